"""Reindex on a small real gallery: embeddings reused by content hash, nothing rebuilt when nothing
changed, a corrupt photo skipped and listed, one reindex at a time, cancel leaves the old index, held-back
photos measure each new index."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import uuid
from pathlib import Path

import pytest

from ml.indexer import IndexModels
from ml.models.image_embedder import ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher
from ml.reindex import run_locked
from ml.text.encoders import default_encoders
from storage import reindex_state
from storage.dataset_import import import_dataset, list_photos
from storage.migrate import upgrade_async
from storage.services import Services
from storage.settings import StorageSettings

LANDMARKS = 4  # enough classes for leave-landmark-out calibration, small enough to build in seconds


def small_dataset(dataset: Path, folder: Path) -> Path:
    """A dataset folder naming a few landmarks' gallery photos in place (absolute paths, nothing copied)."""
    folder.mkdir()
    with open(dataset / "split.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["role"] == "gallery" and r["landmark_id"]]
    by_landmark: dict[str, list[dict]] = {}
    for row in rows:
        by_landmark.setdefault(row["landmark_id"], []).append(row)
    chosen = [lm for lm, photos in sorted(by_landmark.items(), key=lambda kv: -len(kv[1]))][:LANDMARKS]
    with open(folder / "split.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for landmark in chosen:
            for row in by_landmark[landmark][:3]:
                writer.writerow({**row, "image": str((dataset / row["image"]).resolve())})
    (folder / "landmarks.csv").write_bytes((dataset / "landmarks.csv").read_bytes())
    return folder


@pytest.fixture(scope="module")
def models() -> IndexModels:
    return IndexModels(ImageEmbedder(), LocalFeatureMatcher(), default_encoders())


@pytest.fixture
async def services(dataset: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = StorageSettings(data_dir=tmp_path / "data", database_url=None, redis_url=None)
    settings.ensure_dirs()
    await upgrade_async(database_url=settings.resolved_database_url)
    services = Services.create(settings)
    await import_dataset(small_dataset(dataset, tmp_path / "small"), services.repos, services.photos)
    yield services
    await services.close()


async def _reindex(services: Services, models: IndexModels, full: bool = False):  # type: ignore[no-untyped-def]
    job_id = uuid.uuid4().hex
    assert await reindex_state.acquire(services.cache, job_id)
    return await run_locked(services, models, job_id, full)


async def test_incremental_reindex_reuses_embeddings_and_skips_corrupt_photos(services: Services,
                                                                               models: IndexModels) -> None:
    first = await _reindex(services, models)
    assert first.status == "done" and first.n_landmarks == LANDMARKS
    assert first.embedded == first.n_photos > 0
    active = await services.repos.active_index()
    assert active.version == first.version
    assert (Path(active.path) / "text.npz").exists()  # text vectors are part of the version

    again = await _reindex(services, models)
    assert again.status == "unchanged" and again.version == first.version and again.seconds < 5

    junk = b"\xff\xd8\xff this is not a jpeg"
    digest = hashlib.sha256(junk).hexdigest()
    path = services.photos.put(junk, digest)
    landmark = next(iter((await services.repos.get_landmarks()).values())).id
    await services.repos.add_photo(sha256=digest, landmark_id=landmark, role="gallery",
                                   path=services.photos.relative(path))
    third = await _reindex(services, models)
    assert third.status == "done" and third.version != first.version
    assert third.embedded == 0  # every good photo came from the embedding cache
    assert len(third.skipped) == 1 and "photo " in third.skipped[0]
    assert third.n_photos == first.n_photos


async def test_one_reindex_at_a_time_and_cancel_keeps_the_old_index(services: Services,
                                                                     models: IndexModels) -> None:
    first = await _reindex(services, models)
    holder = uuid.uuid4().hex
    assert await reindex_state.acquire(services.cache, holder)
    assert not await reindex_state.acquire(services.cache, uuid.uuid4().hex)  # busy: a second one is refused
    running = asyncio.create_task(run_locked(services, models, holder, full=True))
    for _ in range(200):
        state = await reindex_state.read_state(services.cache)
        if state and state.job_id == holder and state.done > 0:
            break
        await asyncio.sleep(0.05)
    assert reindex_state.is_alive(state)
    assert (await reindex_state.request_cancel(services.cache)).job_id == holder
    final = await running
    assert final.status == "cancelled"
    assert (await services.repos.active_index()).version == first.version
    assert await reindex_state.acquire(services.cache, uuid.uuid4().hex)  # the lock was released


async def test_live_change_moves_a_landmark_without_a_rebuild(services: Services, models: IndexModels) -> None:
    from ml.index.bundle import IndexBundle
    from ml.index.live_update import live_change
    from ml.recognize import Recognizer
    from storage.images import decode_image

    await _reindex(services, models)
    active = await services.repos.active_index()
    bundle = IndexBundle.load(Path(active.path))
    moved = bundle.row_landmarks[0]
    photo_ids = await services.repos.gallery_photo_ids(moved)

    removed = await live_change(services, models, bundle, {"remove_landmarks": [moved]})
    without = IndexBundle.load(Path((await services.repos.active_index()).path))
    assert removed.version == without.version != bundle.version
    assert moved not in without.landmark_head.classes and moved not in {lm.id for lm in without.text.landmarks}
    assert len(without.photo_ids) == len(bundle.photo_ids) - len(photo_ids)
    assert without.fusion == bundle.fusion  # no recalibration: a live change keeps the operating point
    assert without.place_weights == bundle.place_weights

    await services.repos.upsert_landmark(id="moved_copy", name_en="Moved Copy", name_ru=None, aliases=[],
                                         city="Nowhere", country=None, category="church", lat=None, lon=None,
                                         description=None)
    await services.repos.assign_photos(photo_ids, "moved_copy", "gallery")
    added = await live_change(services, models, without, {"add": photo_ids})
    assert added.photo_counts == {"moved_copy": len(photo_ids)} and added.added == len(photo_ids)
    grown = IndexBundle.load(Path((await services.repos.active_index()).path))
    photo = (await services.repos.photos_by_ids(photo_ids[:1]))[0]
    result = Recognizer(models.embedder, models.matcher, grown).recognize(decode_image(services.photos.read(photo.path)))
    assert result.landmarks[0].landmark_id == "moved_copy"
    assert "content_signature" not in grown.stats  # the next /reindex recalibrates instead of saying "nothing new"


async def test_a_reindex_that_lost_its_lock_stops_and_leaves_the_new_holder_alone(services: Services,
                                                                                  models: IndexModels) -> None:
    first = await _reindex(services, models)
    stalled, taker = uuid.uuid4().hex, uuid.uuid4().hex
    assert await reindex_state.acquire(services.cache, stalled)
    # the stalled job's TTL lapsed and another reindex took the lock over
    await services.cache.delete(reindex_state.LOCK_KEY)
    assert await reindex_state.acquire(services.cache, taker)
    final = await run_locked(services, models, stalled, full=True)
    assert final.status == "failed" and "lock" in (final.error or "")
    assert await services.cache.get(reindex_state.LOCK_KEY) == taker  # neither extended nor released
    assert (await reindex_state.read_state(services.cache) or final).job_id != stalled
    assert (await services.repos.active_index()).version == first.version


def _with_queries(dataset: Path, small: Path, queries: list[dict]) -> Path:
    """The small dataset plus the given query rows (absolute image paths, nothing copied)."""
    with open(small / "split.csv", "a", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(queries[0]))
        for row in queries:
            writer.writerow({**row, "image": str((dataset / row["image"]).resolve())})
    return small


async def test_threshold_and_temperature_come_from_the_gallery_only(dataset: Path, tmp_path: Path) -> None:
    """The evaluation protocol with two different sets of query photos over one gallery: same operating point."""
    from ml.evaluate import evaluate

    with open(dataset / "split.csv", encoding="utf-8") as handle:
        queries = [r for r in csv.DictReader(handle) if r["role"] == "query"]
    first = _with_queries(dataset, small_dataset(dataset, tmp_path / "first"), queries[: len(queries) // 2])
    second = _with_queries(dataset, small_dataset(dataset, tmp_path / "second"), queries[len(queries) // 2:])
    one, other = await evaluate(first), await evaluate(second)
    assert one.threshold is not None and one.threshold == other.threshold
    assert one.fusion_temperature is not None and one.fusion_temperature == other.fusion_temperature
    assert [o["query"] for o in one.outcomes] != [o["query"] for o in other.outcomes]


async def test_held_back_photos_measure_each_new_index_and_never_enter_it(services: Services, models: IndexModels,
                                                                          dataset: Path) -> None:
    from ml.index.bundle import IndexBundle
    from ml.recognize import Recognizer
    from storage.dataset_import import SplitPhoto
    from storage.images import decode_image

    chosen = {p.landmark_id for p in await services.repos.gallery_photos()}
    queries = list_photos(dataset, {"query"})
    split = [SplitPhoto(str((dataset / p.image).resolve()), p.landmark_id, p.role)
             for p in [q for q in queries if q.landmark_id in chosen] + [q for q in queries if not q.landmark_id][:3]]
    await import_dataset(dataset, services.repos, services.photos, roles={"query"}, split=split)
    held_back = await services.repos.held_back_photos()
    assert len(held_back) == len(split)

    state = await _reindex(services, models)
    assert state.status == "done"
    bundle = IndexBundle.load(Path((await services.repos.active_index()).path))
    assert not {p.id for p in held_back} & set(bundle.photo_ids)  # measured, never indexed
    recognizer = Recognizer(models.embedder, models.matcher, bundle)  # what the worker would answer, from the photos
    answers = {p.id: recognizer.recognize(decode_image(services.photos.read(p.path))) for p in held_back}
    known = [p for p in held_back if p.landmark_id]
    top1 = sum(answers[p.id].landmarks[0].landmark_id == p.landmark_id for p in known) / len(known)
    rejected = sum(not answers[p.id].recognized for p in held_back if not p.landmark_id) / (len(held_back) - len(known))
    figures = state.figures
    assert figures["held_back_photos"] == len(held_back)
    assert figures["held_back_p_at_1"] == pytest.approx(top1)
    assert figures["held_back_distractor_rejection"] == pytest.approx(rejected)
    assert figures["held_back_false_rejection"] == pytest.approx(
        sum(not answers[p.id].recognized for p in known) / len(known))
    assert bundle.stats["held_back_measured_on"] == bundle.version

    assert (await _reindex(services, models)).status == "unchanged"
    await services.repos.set_photo_role([held_back[0].id], "removed")
    fewer = await _reindex(services, models)  # the held-back set changed: the figures are measured again
    assert fewer.status == "done" and fewer.figures["held_back_photos"] == len(held_back) - 1

    from ml.index.live_update import live_change
    measured = IndexBundle.load(Path((await services.repos.active_index()).path))
    changed = await live_change(services, models, measured, {"remove_photos": [measured.photo_ids[0]]})
    live = await services.repos.active_index()
    assert live.version == changed.version != measured.version
    assert live.stats["held_back_measured_on"] == measured.version  # a live change does not pass them off as its own

    from ml.index.live_update import (
        measure_live_version,  # what the worker runs once the live version serves
    )
    live_bundle = IndexBundle.load(Path(live.path))
    figures = await measure_live_version(services, models, live_bundle)
    live_recognizer = Recognizer(models.embedder, models.matcher, live_bundle)
    live_answers = [live_recognizer.recognize(decode_image(services.photos.read(p.path))) for p in held_back[1:]]
    still_held_back = held_back[1:]  # the first was taken out above
    known_now = [(p, a) for p, a in zip(still_held_back, live_answers) if p.landmark_id]
    assert figures is not None and figures["held_back_photos"] == len(still_held_back)
    assert figures["held_back_p_at_1"] == pytest.approx(
        sum(a.landmarks[0].landmark_id == p.landmark_id for p, a in known_now) / len(known_now))
    assert figures["held_back_false_rejection"] == pytest.approx(
        sum(not a.recognized for _, a in known_now) / len(known_now))
    stored = (await services.repos.active_index()).stats
    assert stored["held_back_measured_on"] == live.version and stored["live_update_of"] == measured.version
    assert stored["held_back_p_at_1"] == figures["held_back_p_at_1"]


async def test_a_worker_extracts_queries_like_the_index_it_serves(services: Services, models: IndexModels) -> None:
    """After an upgrade changes the local-feature settings, the serving index keeps answering with its own kind
    of keypoints until a /reindex replaces it with the worker's."""
    from ml.index.bundle import IndexBundle
    from ml.models.local_features import LocalFeatureConfig
    from ml.worker import Worker
    from storage.images import decode_image

    older = IndexModels(models.embedder, LocalFeatureMatcher(LocalFeatureConfig(max_side=640)), models.text_encoders)
    assert (await _reindex(services, older)).status == "done"
    worker = Worker(services)
    await worker.refresh_index(force=True)
    assert worker.recognizer is not None and worker.recognizer.matcher.config.max_side == 640
    photo = (await services.repos.gallery_photos())[0]
    assert worker.recognizer.recognize(decode_image(services.photos.read(photo.path))).landmarks[0].landmark_id \
        == photo.landmark_id

    assert (await _reindex(services, worker.models)).status == "done"  # a reindex moves to the worker's settings
    await worker.refresh_index(force=True)
    assert worker.recognizer.matcher is worker.matcher
    assert IndexBundle.load(Path((await services.repos.active_index()).path)).local_model_id \
        == worker.matcher.config.model_id


async def test_a_change_of_matching_alone_recalibrates_from_the_cached_embeddings(services: Services,
                                                                                    models: IndexModels) -> None:
    """How keypoints are matched decides the calibration, not the keypoints: a reindex after such a change builds
    a new index (its answers differ) without extracting any photo again."""
    from ml.index.bundle import IndexBundle
    from ml.models.local_features import LocalFeatureConfig

    first = await _reindex(services, models)
    assert first.status == "done" and first.embedded > 0
    rematched = IndexModels(models.embedder, LocalFeatureMatcher(LocalFeatureConfig(gallery_top_k=512, ratio=0.85)),
                            models.text_encoders)
    assert rematched.signature == models.signature
    second = await _reindex(services, rematched)
    assert second.status == "done" and second.version != first.version
    assert second.embedded == 0
    served = IndexBundle.load(Path((await services.repos.active_index()).path))
    assert served.local_model_id == rematched.matcher.config.model_id
    # The index keeps only the keypoints matching reads: a gallery photo's best 512 of its 2048.
    assert 0 < max(len(features.keypoints) for features in served.local) <= 512
    reextracted = IndexModels(models.embedder, LocalFeatureMatcher(LocalFeatureConfig(max_side=640)),
                              models.text_encoders)
    assert reextracted.signature != models.signature  # other keypoints: photos are extracted again
