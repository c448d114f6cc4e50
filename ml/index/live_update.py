"""Add or take out gallery photos in the serving index without a full rebuild (/add, /remove, /review).

A full rebuild re-runs the leave-one-out calibration over the whole gallery (tens of seconds);
a change of a few photos does not need it. The new version reuses the serving version's
vectors and local features, appends or drops rows, retrains the two linear heads (well under
a second), keeps the fusion weights, threshold and ImageNet weight, and is written and activated like any
version, so workers swap to it the same way. The next `/reindex` recalibrates on the
grown gallery: the version says it was a live update and carries no content signature,
so that reindex is never skipped as "nothing new". Until `measure_live_version` has measured the
new version on the gallery's held-back photos, it carries its parent's figures, labelled as the parent's.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from ml.index.bundle import IndexBundle, LandmarkInfo
from ml.index.embedding_cache import EmbeddingCache
from ml.index.vector_index import VectorIndex
from ml.indexer import (
    IndexModels,
    embed_photos,
    held_back_figures,
    landmark_infos,
    new_version_name,
)
from ml.models.heads import train_linear_head
from ml.models.local_features import LocalFeatures
from ml.text.search import LandmarkText, TextCorpus
from storage.repositories import GalleryPhoto
from storage.schemas import GalleryChange
from storage.services import Services

log = logging.getLogger(__name__)


class GalleryTooSmall(ValueError):
    pass


def changed_bundle(
    bundle: IndexBundle,
    *,
    add: list[tuple[int, str, np.ndarray, LocalFeatures]] = (),  # type: ignore[assignment]
    remove_photo_ids: set[int] = frozenset(),  # type: ignore[assignment]
    remove_landmark_ids: set[str] = frozenset(),  # type: ignore[assignment]
    landmarks: dict[str, LandmarkInfo],
    text: TextCorpus | None,
) -> IndexBundle:
    """A new version of `bundle` with rows added and removed; `landmarks` describes every landmark now known."""
    relabelled = {item[0] for item in add}  # a photo added again (e.g. under another landmark) replaces its row
    keep = [row for row, (photo_id, landmark_id) in enumerate(zip(bundle.photo_ids, bundle.row_landmarks))
            if photo_id not in remove_photo_ids | relabelled and landmark_id not in remove_landmark_ids]
    old_vectors = bundle.gallery_matrix
    photo_ids = [bundle.photo_ids[row] for row in keep] + [item[0] for item in add]
    labels = [bundle.row_landmarks[row] for row in keep] + [item[1] for item in add]
    if len(set(labels)) < 2:
        raise GalleryTooSmall("the gallery would keep fewer than two landmarks")
    parts = [old_vectors[keep]] + ([np.stack([item[2] for item in add])] if add else [])
    vectors = np.concatenate(parts).astype(np.float32)
    local = [bundle.local[row] for row in keep] + [item[3] for item in add]
    kept_landmarks = {label: landmarks[label] for label in set(labels)}
    stats = {key: value for key, value in bundle.stats.items() if key != "content_signature"}
    stats.update({"live_update_of": bundle.version, "n_photos": len(photo_ids), "n_landmarks": len(kept_landmarks)})
    return IndexBundle(
        version=new_version_name(),
        model_id=bundle.model_id,
        local_model_id=bundle.local_model_id,
        photo_ids=photo_ids,
        row_landmarks=labels,
        landmarks=kept_landmarks,
        vectors=VectorIndex.build(vectors),
        local=local,
        landmark_head=train_linear_head(vectors, labels),
        category_head=train_linear_head(vectors, [kept_landmarks[label].category for label in labels]),
        fusion=bundle.fusion,
        place_weights=bundle.place_weights,
        expansion=bundle.expansion,  # rows added live are not database-augmented until the next /reindex
        whitening=bundle.whitening,  # added rows arrive whitened with it (live_change)
        stats=stats,
        text=text,
    )


async def live_change(services: Services, models: IndexModels, bundle: IndexBundle, payload: dict) -> GalleryChange:  # type: ignore[type-arg]
    """Embed the added photos (through the embedding cache), write and activate the changed version."""
    repos = services.repos
    added_rows = await repos.photos_by_ids([int(i) for i in payload.get("add", [])])
    embeddings = EmbeddingCache(services.settings.data_dir / "embeddings", models.signature)
    photos = [GalleryPhoto(p.id, p.sha256, p.landmark_id, p.path) for p in added_rows if p.landmark_id]
    gallery = await asyncio.to_thread(embed_photos, photos, services.photos, models, embeddings)
    kept, vectors, local, skipped = gallery.photos, gallery.vectors, gallery.local, gallery.skipped
    remove_landmarks = set(payload.get("remove_landmarks", []))
    remove_photos = {int(i) for i in payload.get("remove_photos", [])}
    rows = await repos.get_landmarks()
    if kept:
        vectors = bundle.to_index_space(vectors)  # the space the stored rows and the heads live in
    add = [(p.id, p.landmark_id, v, f) for p, v, f in zip(kept, vectors, local)]
    serving = set(bundle.row_landmarks)
    after = (serving | {p.landmark_id for p in kept}) - remove_landmarks
    text = bundle.text
    if text is None or after != {lm.id for lm in text.landmarks}:  # a landmark came or went: names to search change
        text = await asyncio.to_thread(TextCorpus.build, [LandmarkText.from_row(rows[k]) for k in sorted(after)],
                                       models.text_encoders)
    new = await asyncio.to_thread(changed_bundle, bundle, add=add, remove_photo_ids=remove_photos,
                                  remove_landmark_ids=remove_landmarks, landmarks=landmark_infos(rows), text=text)
    folder = await asyncio.to_thread(new.save, services.settings.index_dir)
    await repos.add_index_version(activate=True, version=new.version, path=str(folder), model=new.model_id,
                                  n_photos=len(new.photo_ids), n_landmarks=len(new.landmarks), stats=new.stats)
    touched = sorted({p.landmark_id for p in kept} | remove_landmarks
                     | {lm for pid, lm in zip(bundle.photo_ids, bundle.row_landmarks) if pid in remove_photos})
    counts = {lm: sum(1 for label in new.row_landmarks if label == lm) for lm in touched}
    log.info("index.live_change version=%s from=%s added=%d removed_photos=%d removed_landmarks=%d", new.version,
             bundle.version, len(add), len(remove_photos), len(remove_landmarks))
    return GalleryChange(version=new.version, added=len(add), removed=len(bundle.photo_ids) + len(add)
                         - len(new.photo_ids), skipped=skipped, photo_counts=counts)


async def measure_live_version(services: Services, models: IndexModels, bundle: IndexBundle) -> dict | None:  # type: ignore[type-arg]
    """A live version's own figures on the held-back photos, stored with it (None: the gallery holds none).

    Run after the version serves, beside the answers: the admin's reply and the users' photos never wait for
    the held-back photos (about a tenth of a second each). The embeddings come from the cache."""
    held_back = await services.repos.held_back_photos()
    if not held_back:
        return None
    embeddings = EmbeddingCache(services.settings.data_dir / "embeddings", models.signature)
    figures, skipped = await held_back_figures(bundle, held_back, services.photos, models, embeddings)
    await services.repos.update_index_stats(bundle.version, figures)
    log.info("index.held_back_measured version=%s photos=%d skipped=%d", bundle.version, len(held_back), len(skipped))
    return figures
