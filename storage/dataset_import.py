"""Import a dataset folder in the `../shared/datasets` format into the gallery.

images/<landmark_id>/*.jpg, landmarks.csv, optional split.csv (then only `gallery`
photos enter, and distractor gallery photos are kept to calibrate rejection; with the `query` role
asked for too, query photos enter held back: never indexed, recognised after each build to measure it). Photos are
copied into the photo store by content hash, so a second import adds nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from storage.images import ImageRejected, decode_image, sha256_of
from storage.models import HELD_BACK
from storage.photo_store import PhotoStore
from storage.repositories import Repositories
from storage.schemas import normalise_category

DISTRACTOR_FOLDER = "_distractor"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


class SplitPhoto(NamedTuple):
    """A row of split.csv: the image's path in the dataset folder, its landmark (None: a distractor), its role."""

    image: str
    landmark_id: str | None
    role: str


@dataclass
class ImportReport:
    landmarks_added: int = 0
    landmarks_updated: int = 0
    photos_added: int = 0
    photos_skipped: int = 0
    photos_rejected: list[str] | None = None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def read_landmarks(folder: Path) -> list[dict]:
    with open(folder / "landmarks.csv", encoding="utf-8") as handle:
        return [
            {
                "id": row["landmark_id"].strip(),
                "name_en": row.get("name_en", "").strip() or row["landmark_id"],
                "name_ru": (row.get("name_ru") or "").strip() or None,
                "city": (row.get("city") or "").strip() or None,
                "country": (row.get("country") or "").strip() or None,
                "category": normalise_category(row.get("category")),
                "lat": _float(row.get("lat")),
                "lon": _float(row.get("lon")),
                "aliases": [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()],
                "description": (row.get("description") or "").strip() or None,
            }
            for row in csv.DictReader(handle)
        ]


def list_photos(folder: Path, roles: set[str]) -> list[SplitPhoto]:
    """The photos to import: split.csv's rows in `roles`, or without a split every image as a gallery photo."""
    split = folder / "split.csv"
    if split.exists():
        with open(split, encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r["role"] in roles]
        return [SplitPhoto(r["image"], r["landmark_id"] or None, r["role"]) for r in rows]
    photos = []
    for path in sorted((folder / "images").glob("*/*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            landmark = None if path.parent.name == DISTRACTOR_FOLDER else path.parent.name
            photos.append(SplitPhoto(str(path.relative_to(folder)), landmark, "gallery"))
    return photos


async def import_dataset(
    folder: Path,
    repos: Repositories,
    store: PhotoStore,
    *,
    roles: set[str] | None = None,
    split: list[SplitPhoto] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """`split` replaces the folder's split.csv (the evaluation's re-splits deal the roles again)."""
    report = ImportReport(photos_rejected=[])
    known = set()
    for fields in read_landmarks(folder):
        known.add(fields["id"])
        if await repos.upsert_landmark(**fields):
            report.landmarks_added += 1
        else:
            report.landmarks_updated += 1
    roles = roles or {"gallery"}
    photos = [p for p in split if p.role in roles] if split is not None else list_photos(folder, roles)
    for done, (relative, landmark_id, photo_role) in enumerate(photos, start=1):
        data = (folder / relative).read_bytes()
        digest = sha256_of(data)
        if await repos.photo_exists(digest):
            report.photos_skipped += 1
        else:
            try:
                image = decode_image(data)
            except ImageRejected as exc:
                report.photos_rejected.append(f"{relative}: {exc}")
                continue
            if landmark_id is not None and landmark_id not in known:
                report.photos_rejected.append(f"{relative}: landmark {landmark_id} is not in landmarks.csv")
                continue
            path = store.put(data, digest, Path(relative).suffix.lower() or ".jpg")
            role = HELD_BACK if photo_role == "query" else "gallery" if landmark_id else "distractor"
            added = await repos.add_photo(
                sha256=digest, landmark_id=landmark_id, role=role,
                path=store.relative(path), width=image.width, height=image.height, source=relative,
            )
            report.photos_added += int(added)
            report.photos_skipped += int(not added)
        if progress:
            progress(done, len(photos))
    return report
