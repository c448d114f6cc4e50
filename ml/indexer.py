"""Build a new index version from the gallery and make it the one that serves.

Embeds every gallery photo (global descriptor + local features), trains the landmark and
category heads, fits the fusion weights and the rejection threshold by leave-one-out on
the gallery (gallery distractors as negatives), writes the version folder beside the old
ones, and flips the active pointer in the database in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ml.fusion import fit_fusion, probabilities
from ml.index.bundle import IndexBundle, LandmarkInfo
from ml.index.vector_index import VectorIndex
from ml.models.heads import out_of_fold_log_proba, train_linear_head
from ml.models.image_embedder import ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher, LocalFeatures
from ml.recognize import gather_evidence
from ml.settings import MLSettings
from storage.images import ImageRejected, decode_image
from storage.photo_store import PhotoStore
from storage.repositories import GalleryPhoto, Repositories

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class EmptyGallery(RuntimeError):
    pass


def new_version_name() -> str:
    return datetime.now(timezone.utc).strftime("v%Y%m%d-%H%M%S-%f")


def embed_photos(
    photos: list[GalleryPhoto], store: PhotoStore, embedder: ImageEmbedder, matcher: LocalFeatureMatcher,
    progress: Progress | None = None,
) -> tuple[list[GalleryPhoto], np.ndarray, list[LocalFeatures], list[str]]:
    """Embeds what decodes; corrupt photos are skipped and listed, never fatal."""
    kept, vectors, local, skipped = [], [], [], []
    for done, photo in enumerate(photos, start=1):
        try:
            image = decode_image(store.read(photo.path))
        except (ImageRejected, OSError) as exc:
            skipped.append(f"{photo.path}: {exc}")
            log.warning("index.photo_skipped photo_id=%s reason=%s", photo.id, exc)
        else:
            kept.append(photo)
            vectors.append(embedder.embed_one(image).vector)
            local.append(matcher.extract(image))
        if progress:
            progress(done, len(photos))
    array = np.stack(vectors) if vectors else np.zeros((0, 1), np.float32)
    return kept, array, local, skipped


def build_bundle(
    photos: list[GalleryPhoto], vectors: np.ndarray, local: list[LocalFeatures],
    landmarks: dict[str, LandmarkInfo], embedder: ImageEmbedder, matcher: LocalFeatureMatcher,
    false_accept_rate: float = 0.05,
) -> IndexBundle:
    landmark_rows = [i for i, p in enumerate(photos) if p.landmark_id is not None]
    distractor_rows = [i for i, p in enumerate(photos) if p.landmark_id is None]
    if not landmark_rows:
        raise EmptyGallery("the gallery has no landmark photos: run `landmarks import DIR` first")
    gallery_vectors = vectors[landmark_rows]
    labels = [photos[i].landmark_id for i in landmark_rows]
    categories = [landmarks[label].category for label in labels]
    bundle = IndexBundle(
        version=new_version_name(),
        model_id=embedder.model_id,
        local_model_id=matcher.config.model_id,
        photo_ids=[photos[i].id for i in landmark_rows],
        row_landmarks=labels,
        landmarks={k: v for k, v in landmarks.items() if k in set(labels)},
        vectors=VectorIndex.build(gallery_vectors),
        local=[local[i] for i in landmark_rows],
        landmark_head=train_linear_head(gallery_vectors, labels),
        category_head=train_linear_head(gallery_vectors, categories),
        fusion=fit_fusion([]),
    )
    samples = calibration_samples(bundle, matcher, gallery_vectors, labels, vectors[distractor_rows],
                                  [local[i] for i in distractor_rows])
    bundle.fusion = fit_fusion(samples, false_accept_rate=false_accept_rate)
    bundle.stats = gallery_stats(bundle, samples, len(distractor_rows))
    return bundle


def calibration_samples(
    bundle: IndexBundle, matcher: LocalFeatureMatcher, vectors: np.ndarray, labels: list[str],
    distractor_vectors: np.ndarray, distractor_local: list[LocalFeatures],
) -> list[tuple[np.ndarray, int]]:
    """Evidence from the gallery alone, in three kinds (query photos never tune anything):

    - leave-one-out: a gallery photo against the rest; the answer is its landmark;
    - leave-landmark-out: a gallery photo with every photo of its landmark removed, so it is a
      real building the gallery does not know; the answer is "unknown";
    - gallery distractors (streets, interiors, replicas); the answer is "unknown".
    """
    classes = bundle.landmark_head.classes
    column = {name: i for i, name in enumerate(classes)}
    rows_of: dict[str, frozenset[int]] = {
        name: frozenset(i for i, label in enumerate(labels) if label == name) for name in classes
    }
    held_out_head = out_of_fold_log_proba(vectors, labels, classes)
    samples = []
    for row, label in enumerate(labels):
        if len(rows_of[label]) >= 2:
            found = gather_evidence(bundle, matcher, vectors[row], bundle.local[row], exclude_rows=frozenset({row}),
                                    head_log_proba=held_out_head[row])
            samples.append((found.evidence, column[label]))
        if len(classes) >= 3:
            found = gather_evidence(bundle, matcher, vectors[row], bundle.local[row], exclude_rows=rows_of[label],
                                    head_log_proba=_without_class(held_out_head[row], column[label]))
            samples.append((np.delete(found.evidence, column[label], axis=0), -1))
    for vector, local in zip(distractor_vectors, distractor_local):
        found = gather_evidence(bundle, matcher, vector, local)
        samples.append((found.evidence, -1))
    return samples


def _without_class(log_proba: np.ndarray, column: int) -> np.ndarray:
    """The head's answer had it never heard of one class: drop it and renormalise."""
    rest = np.delete(log_proba, column)
    rest = rest - np.log(np.exp(rest - rest.max()).sum()) - rest.max()
    return np.insert(rest, column, -30.0)


def gallery_stats(bundle: IndexBundle, samples: list[tuple[np.ndarray, int]], n_distractors: int) -> dict:
    """Leave-one-out figures on the gallery: what an admin sees after a rebuild."""
    correct = accepted = rejected_distractors = n_pos = n_negatives = 0
    for evidence, label in samples:
        p, _ = probabilities(evidence, bundle.fusion)
        confident = p.max() >= bundle.fusion.threshold
        if label < 0:
            n_negatives += 1
            rejected_distractors += int(not confident)
        else:
            n_pos += 1
            correct += int(p.argmax() == label)
            accepted += int(confident)
    return {
        "n_photos": len(bundle.photo_ids),
        "n_landmarks": len(bundle.landmarks),
        "n_gallery_distractors": n_distractors,
        "loo_p_at_1": correct / n_pos if n_pos else None,
        "loo_accepted": accepted / n_pos if n_pos else None,
        "loo_unknown_rejection": rejected_distractors / n_negatives if n_negatives else None,
        "fusion": bundle.fusion.to_dict(),
    }


async def build_index(
    repos: Repositories, store: PhotoStore, embedder: ImageEmbedder, matcher: LocalFeatureMatcher,
    index_root: Path, progress: Progress | None = None, false_accept_rate: float | None = None,
) -> IndexBundle:
    """Embed the gallery, build and save a new version, activate it. Returns the bundle."""
    started = time.perf_counter()
    photos = await repos.gallery_photos()
    rows = await repos.get_landmarks()
    landmarks = {
        k: LandmarkInfo(id=v.id, name_en=v.name_en, name_ru=v.name_ru, city=v.city, country=v.country,
                        category=v.category, lat=v.lat, lon=v.lon)
        for k, v in rows.items()
    }
    kept, vectors, local, skipped = await asyncio.to_thread(embed_photos, photos, store, embedder, matcher, progress)
    t_embed = time.perf_counter() - started
    rate = MLSettings().open_set_false_accept_rate if false_accept_rate is None else false_accept_rate
    bundle = await asyncio.to_thread(build_bundle, kept, vectors, local, landmarks, embedder, matcher, rate)
    bundle.stats.update({
        "skipped_photos": skipped,
        "embed_seconds": round(t_embed, 2),
        "images_per_second": round(len(photos) / t_embed, 2) if t_embed > 0 else None,
        "total_seconds": round(time.perf_counter() - started, 2),
    })
    folder = bundle.save(index_root)
    await repos.add_index_version(
        activate=True, version=bundle.version, path=str(folder), model=bundle.model_id,
        n_photos=len(bundle.photo_ids), n_landmarks=len(bundle.landmarks), stats=bundle.stats,
    )
    log.info("index.built version=%s photos=%d landmarks=%d seconds=%.1f", bundle.version,
             len(bundle.photo_ids), len(bundle.landmarks), bundle.stats["total_seconds"])
    return bundle
