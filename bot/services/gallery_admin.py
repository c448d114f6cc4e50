"""Admins change the gallery from Telegram: store a photo, find or create its landmark, and have a
worker put the change into the live index (no full rebuild; see `ml/index/live_update`)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import unicodedata
from dataclasses import asdict, dataclass, field

from aiogram import Bot
from transliterate import translit

from storage.images import ImageRejected, decode_image
from storage.models import Landmark
from storage.queue import QueueTimeout
from storage.schemas import GalleryChange, Job, normalise_category
from storage.services import Services

log = logging.getLogger(__name__)

GALLERY_JOB_TIMEOUT_S = 300.0  # embedding a whole album and writing a version takes a while on 2 cores
PENDING_TTL_S = 3600
CYRILLIC = re.compile(r"[\u0400-\u04FF]")


class GalleryChangeFailed(RuntimeError):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code  # "busy" (a reindex runs), "internal", "timeout"
        self.detail = detail


@dataclass
class PendingAdd:
    """Photos stored and waiting for the admin to say which landmark they show (kept in the cache)."""

    photo_ids: list[int]
    query: str
    admin_id: int
    skipped: list[str] = field(default_factory=list)

    async def save(self, services: Services) -> str:
        token = secrets.token_urlsafe(8)
        await services.cache.set(f"add:{token}", json.dumps(asdict(self)), PENDING_TTL_S)
        return token

    @classmethod
    async def load(cls, services: Services, token: str) -> PendingAdd | None:
        raw = await services.cache.get(f"add:{token}")
        return cls(**json.loads(raw)) if raw else None


async def store_photo(bot: Bot, services: Services, file_id: str) -> int:
    """Download and keep a photo (deduplicated by content hash); returns its id. Raises ImageRejected."""
    data = (await bot.download(file_id)).read()
    image = decode_image(data)
    digest = hashlib.sha256(data).hexdigest()
    existing = await services.repos.photo_by_sha256(digest)
    if existing is not None:
        return existing.id
    path = services.photos.put(data, digest, ".jpg")
    await services.repos.add_photo(sha256=digest, landmark_id=None, role="pending", path=services.photos.relative(path),
                                   width=image.width, height=image.height, source="telegram",
                                   telegram_file_id=file_id)
    stored = await services.repos.photo_by_sha256(digest)
    return stored.id


async def store_photos(bot: Bot, services: Services, file_ids: list[str]) -> tuple[list[int], list[str]]:
    ids, skipped = [], []
    for file_id in file_ids:
        try:
            ids.append(await store_photo(bot, services, file_id))
        except ImageRejected as exc:
            skipped.append(exc.reason)
    return list(dict.fromkeys(ids)), skipped


def _folded(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def exact_landmarks(rows: dict[str, Landmark], query: str) -> list[Landmark]:
    """The landmarks whose id is `query`, or whose name or alias is `query` up to case and spacing."""
    if query in rows:
        return [rows[query]]
    wanted = _folded(query)
    return [row for row in rows.values()
            if wanted in {_folded(name) for name in (row.name_en, row.name_ru, *(row.aliases or [])) if name}]


async def find_landmarks(services: Services, query: str, timeout: float) -> tuple[list[Landmark], bool]:
    """The landmarks a name may mean, and whether the match is exact (its id, or a name spelled out in full).

    Only an exact match is safe to act on without asking: "Test Cathedral" must not land in
    "St Basil's Cathedral" because the search finds the word."""
    rows = await services.repos.get_landmarks()
    exact = exact_landmarks(rows, query)
    if exact:
        return exact, len(exact) == 1
    result = await services.queue.submit(Job.search(query, 5), timeout=timeout)
    if not result.ok or result.search is None or not result.search.matched:
        return [], False
    return [rows[hit.landmark_id] for hit in result.search.hits if hit.landmark_id in rows], False


def new_landmark_id(name: str, taken: set[str]) -> str:
    latin = translit(name, "ru", reversed=True) if CYRILLIC.search(name) else name
    ascii_name = unicodedata.normalize("NFKD", latin).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:60] or "landmark"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


async def create_landmark(services: Services, name: str, category: str, city: str | None, country: str | None,
                          lat: float | None, lon: float | None) -> str:
    rows = await services.repos.get_landmarks()
    landmark_id = new_landmark_id(name, set(rows))
    russian = bool(CYRILLIC.search(name))
    await services.repos.upsert_landmark(
        id=landmark_id, name_en=translit(name, "ru", reversed=True) if russian else name,
        name_ru=name if russian else None, aliases=[], city=city, country=country,
        category=normalise_category(category), lat=lat, lon=lon, description=None)
    log.info("gallery.landmark_created id=%s", landmark_id)
    return landmark_id


async def apply(services: Services, job: Job, rollback_photo_ids: list[int] = ()) -> GalleryChange:  # type: ignore[assignment]
    """Run a gallery change in a worker; when it does not happen, photos go back to waiting."""
    try:
        result = await services.queue.submit(job, timeout=GALLERY_JOB_TIMEOUT_S)
    except QueueTimeout as exc:
        raise GalleryChangeFailed("timeout", "no worker answered") from exc
    if result.ok and result.gallery is not None:
        return result.gallery
    if rollback_photo_ids:
        await services.repos.assign_photos(list(rollback_photo_ids), None, "pending")
    raise GalleryChangeFailed(result.error_code or "internal", result.error or "")


async def add_to_landmark(services: Services, photo_ids: list[int], landmark_id: str) -> GalleryChange:
    await services.repos.assign_photos(photo_ids, landmark_id, "gallery")
    return await apply(services, Job.gallery(add_photo_ids=photo_ids), rollback_photo_ids=photo_ids)
