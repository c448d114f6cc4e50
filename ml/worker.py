"""The ML worker: takes jobs from the queue, runs the models off the event loop, answers.

Models load once per process. The active index version is re-read from the database
every few seconds and a new version is loaded beside the old one, then swapped in with
a single assignment: jobs in flight finish on the version they started with, and every
answer carries the version it came from.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path

import torch
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ml.index.bundle import IndexBundle
from ml.index.live_update import live_change, measure_live_version
from ml.indexer import IndexModels
from ml.models.image_embedder import ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher, matcher_for
from ml.recognize import Recognizer
from ml.reindex import run_locked
from ml.settings import MLSettings
from ml.text.encoders import encoders_from_settings
from ml.text.search import LandmarkText, TextSearch
from storage import reindex_state
from storage.cache import result_key, worker_key
from storage.images import ImageRejected, decode_image
from storage.queue import Delivery
from storage.schemas import Job, JobResult
from storage.services import Services

log = logging.getLogger(__name__)

RETRY_DELAY_S = 2.0


class Worker:
    def __init__(self, services: Services, settings: MLSettings | None = None) -> None:
        self.services = services
        self.settings = settings or MLSettings()
        if self.settings.worker_torch_threads:
            torch.set_num_threads(self.settings.worker_torch_threads)
        self.embedder = ImageEmbedder(precision=self.settings.embed_precision)
        self.matcher = LocalFeatureMatcher()
        self.text_encoders = encoders_from_settings(self.settings)
        self.recognizer: Recognizer | None = None
        self.text_search: TextSearch | None = None  # from the active index version's text vectors
        self.id = f"{socket.gethostname()}-{os.getpid()}"
        self._checked_at = 0.0
        self._beat_at = 0.0
        self._stopping = asyncio.Event()
        self._reindexing: asyncio.Task | None = None
        self._measuring: set[asyncio.Task] = set()  # held-back measures of live changes, referenced until done

    @property
    def models(self) -> IndexModels:
        return IndexModels(self.embedder, self.matcher, self.text_encoders)

    async def load(self) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(self.embedder.load)
        await asyncio.to_thread(self.matcher.load)
        await asyncio.to_thread(lambda: [encoder.encode(["warm-up"]) for encoder in self.text_encoders])
        await self.refresh_index(force=True)
        log.info("worker.loaded seconds=%.2f index=%s embed_precision=%s", time.perf_counter() - started,
                 self.recognizer.bundle.version if self.recognizer else None,
                 "bfloat16" if self.embedder.bfloat16 else "float32")

    async def refresh_index(self, force: bool = False) -> None:
        """Load the active version if it changed; the old one keeps serving until then."""
        if not force and time.monotonic() - self._checked_at < self.settings.index_check_interval_s:
            return
        self._checked_at = time.monotonic()
        row = await self.services.repos.active_index()
        if row is None or (self.recognizer and self.recognizer.bundle.version == row.version):
            return
        bundle = await asyncio.to_thread(IndexBundle.load, Path(row.path))
        if bundle.model_id != self.embedder.model_id:
            log.error("worker.index_model_mismatch index=%s model=%s worker=%s", row.version, bundle.model_id,
                      self.embedder.model_id)
            return
        matcher = matcher_for(bundle.local_model_id, self.matcher)
        if matcher is not self.matcher:
            log.warning("worker.index_local_features_differ index=%s index_features=%s worker_features=%s "
                        "action=queries_extracted_as_the_index_until_reindex", row.version, bundle.local_model_id,
                        self.matcher.config.model_id)
            await asyncio.to_thread(matcher.load)
        text_search = None
        if bundle.text is not None:
            text_search = await asyncio.to_thread(TextSearch, bundle.text, self.text_encoders)
        self.recognizer, self.text_search = Recognizer(self.embedder, matcher, bundle), text_search
        log.info("worker.index_swapped version=%s photos=%d", bundle.version, len(bundle.photo_ids))

    def stop(self) -> None:
        self._stopping.set()
        if self._reindexing:
            self._reindexing.cancel()
        for task in self._measuring:
            task.cancel()

    async def heartbeat(self) -> None:
        if time.monotonic() - self._beat_at < self.settings.worker_heartbeat_s:
            return
        self._beat_at = time.monotonic()
        await self.services.cache.set(worker_key(self.id), str(time.time()),
                                      int(3 * self.settings.worker_heartbeat_s) + 1)

    async def run(self) -> None:
        await self.load()
        queue = self.services.queue
        while not self._stopping.is_set():
            try:
                deliveries = await queue.consume(self.settings.worker_batch_size, self.settings.worker_poll_timeout_s)
                await self.heartbeat()
                await self.refresh_index()
                for delivery in deliveries:
                    await self.handle(delivery)
            except (OSError, RedisError, SQLAlchemyError) as exc:
                # Redis or the database went away: keep the models loaded and try again shortly;
                # unacknowledged jobs stay pending and are reclaimed.
                log.error("worker.backend_unavailable error=%s: %s", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_DELAY_S)

    async def handle(self, delivery: Delivery) -> None:
        job = delivery.job
        started = time.perf_counter()
        if job.kind == "ping":
            result = JobResult(job_id=job.id, ok=True)
        elif job.kind == "search":
            result = await self._search(job)
        elif job.kind == "reindex":
            result = await self._start_reindex(job)
        elif job.kind == "gallery":
            result = await self._change_gallery(job)
        else:
            result = await self._recognize(delivery)
        await self.services.queue.complete(delivery, result)
        log.info("worker.job_done job=%s kind=%s ok=%s ms=%.0f", job.id, job.kind, result.ok,
                 1000 * (time.perf_counter() - started))

    async def _search(self, job: Job) -> JobResult:
        if self.text_search is None:  # an index built before text vectors were stored in it
            rows = await self.services.repos.get_landmarks()
            self.text_search = await asyncio.to_thread(
                TextSearch, [LandmarkText.from_row(row) for row in rows.values()], self.text_encoders)
        page = await asyncio.to_thread(self.text_search.page, job.payload["query"], int(job.payload["limit"]),
                                       int(job.payload["offset"]))
        return JobResult(job_id=job.id, ok=True, search=page)

    async def _start_reindex(self, job: Job) -> JobResult:
        """Answers at once (started, or busy with the running one); the build goes on beside the other jobs."""
        if not await reindex_state.acquire(self.services.cache, job.id):
            return JobResult(job_id=job.id, ok=False, error="a reindex is running", error_code="busy",
                             reindex=await reindex_state.read_state(self.services.cache))
        self._reindexing = asyncio.create_task(self._reindex(job), name=f"reindex-{job.id}")
        return JobResult(job_id=job.id, ok=True)

    async def _reindex(self, job: Job) -> None:
        state = await run_locked(self.services, self.models, job.id, bool(job.payload.get("full")),
                                         job.payload.get("requested_by"))
        if state.status == "done":
            await self.refresh_index(force=True)

    async def _change_gallery(self, job: Job) -> JobResult:
        """/add, /remove, an accepted correction: a new version from the serving one, no full rebuild.

        Holds the reindex lock while it works, so it never races a reindex (it answers "busy" instead)."""
        cache = self.services.cache
        if not await reindex_state.acquire(cache, job.id):
            return JobResult(job_id=job.id, ok=False, error="a reindex is running", error_code="busy")
        try:
            await self.refresh_index(force=True)
            if self.recognizer is None:
                return JobResult(job_id=job.id, ok=False, error="no index has been built", error_code="no_index")
            # Photos join the serving version with its own kind of local features (see matcher_for).
            models = IndexModels(self.embedder, self.recognizer.matcher, self.text_encoders)
            change = await live_change(self.services, models, self.recognizer.bundle, job.payload)
            await self.refresh_index(force=True)
            if self.recognizer is not None and self.recognizer.bundle.version == change.version:
                task = asyncio.create_task(self._measure_live(models, self.recognizer.bundle),
                                           name=f"held-back-{job.id}")
                self._measuring.add(task)
                task.add_done_callback(self._measuring.discard)
            return JobResult(job_id=job.id, ok=True, gallery=change)
        except Exception as exc:  # the serving version is untouched; the admin reads why
            log.exception("worker.gallery_change_failed job=%s", job.id)
            return JobResult(job_id=job.id, ok=False, error=f"{type(exc).__name__}: {exc}"[:300],
                             error_code="internal")
        finally:
            await reindex_state.release(cache, job.id)

    async def _measure_live(self, models: IndexModels, bundle: IndexBundle) -> None:
        """The held-back figures of a version a live change made, beside the answers (it serves meanwhile)."""
        try:
            await measure_live_version(self.services, models, bundle)
        except Exception:  # the version serves either way; /stats keeps showing its parent's figures, labelled
            log.exception("worker.held_back_measure_failed version=%s", bundle.version)

    async def _recognize(self, delivery: Delivery) -> JobResult:
        job = delivery.job
        recognizer = self.recognizer
        if recognizer is None:
            await self.refresh_index(force=True)
            recognizer = self.recognizer
        if recognizer is None:
            return JobResult(job_id=job.id, ok=False, error="no index has been built", error_code="no_index")
        try:
            image = await asyncio.to_thread(decode_image, job.image_bytes())
            result = await asyncio.to_thread(recognizer.recognize, image)
        except ImageRejected as exc:
            return JobResult(job_id=job.id, ok=False, error=str(exc), error_code="bad_image")
        except Exception as exc:  # an answer must go back even when a model breaks
            log.exception("worker.job_failed job=%s", job.id)
            return JobResult(job_id=job.id, ok=False, error=type(exc).__name__, error_code="internal")
        settings = self.services.settings
        await self.services.cache.set(result_key(result.index_version or "", job.payload["sha256"]),
                                      result.model_dump_json(), settings.cache_ttl_s)
        return JobResult(job_id=job.id, ok=True, result=result)
