"""A reindex as an admin runs it: one at a time, followed, cancellable, never in the way of answers.

The build itself (`ml.indexer.build_index`) runs in a thread while the event loop keeps
serving jobs. This module wraps it with what several processes need to agree on, all kept in
the shared cache (Redis, or memory in the embedded mode):
- a lock with a short TTL, refreshed while the build runs: one reindex at a time across all
  workers, and a worker killed mid-build frees it within `LOCK_TTL_S`;
- the state (`ReindexState`), rewritten every `HEARTBEAT_S`: stage, photos done, speed, time left;
- a cancel flag the bot sets and the heartbeat turns into a stop at the next photo.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ml.held_back import FIGURES as HELD_BACK_FIGURES
from ml.index.embedding_cache import EmbeddingCache
from ml.indexer import (
    BuildControl,
    IndexCancelled,
    IndexModels,
    IndexOutcome,
    build_index,
)
from storage.reindex_state import (
    CANCEL_KEY,
    STATE_KEY,
    STATE_TTL_S,
    keep,
    release,
)
from storage.schemas import ReindexState
from storage.services import Services

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
FIGURES = ("loo_p_at_1", "loo_accepted", "loo_unknown_rejection", *HELD_BACK_FIGURES)


async def run_locked(services: Services, models: IndexModels, job_id: str, full: bool,
                     requested_by: int | None = None, on_state=None) -> ReindexState:  # type: ignore[no-untyped-def]
    """Build a new index under the lock `storage.reindex_state.acquire` took; always releases it and leaves
    a final state."""
    cache = services.cache
    active = await services.repos.active_index()
    now = time.time()
    state = ReindexState(job_id=job_id, full=full, requested_by=requested_by, started_at=now, updated_at=now,
                         previous_version=active.version if active else None)
    stage_started = {"stage": "", "at": time.monotonic()}

    def progress(stage: str, done: int, total: int) -> None:  # called from the build thread
        if stage != stage_started["stage"]:
            stage_started.update(stage=stage, at=time.monotonic())
        elapsed = time.monotonic() - stage_started["at"]
        rate = done / elapsed if elapsed > 0 and done else None
        state.stage, state.done, state.total = stage, done, total
        state.images_per_second = round(rate, 2) if rate and stage == "embed" else None
        state.eta_s = round((total - done) / rate, 1) if rate else None

    control = BuildControl(progress=progress)
    lost_lock = asyncio.Event()

    async def heartbeat() -> None:
        while True:
            if not await keep(cache, job_id):  # stalled past the TTL and another reindex took over: stop
                log.error("reindex.lock_lost job=%s", job_id)
                lost_lock.set()
                control.cancel.set()
                return
            state.updated_at = time.time()
            await cache.set(STATE_KEY, state.model_dump_json(), STATE_TTL_S)
            if on_state:
                on_state(state)
            if await cache.get(CANCEL_KEY) == job_id:
                control.cancel.set()
            await asyncio.sleep(HEARTBEAT_S)

    beating = asyncio.create_task(heartbeat())
    log.info("reindex.started job=%s full=%s by=%s", job_id, full, requested_by)
    try:
        embeddings = EmbeddingCache(services.settings.data_dir / "embeddings", models.signature)
        outcome = await build_index(services.repos, services.photos, models, services.settings.index_dir,
                                    embeddings=embeddings, control=control, full=full)
        _finish(state, outcome)
    except IndexCancelled:
        state.status = "cancelled"
        if lost_lock.is_set():
            state.status, state.error = "failed", "another reindex took the lock over"
    except Exception as exc:  # the old index keeps serving; the admin reads why
        log.exception("reindex.failed job=%s", job_id)
        state.status, state.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        state.updated_at = time.time()
        state.seconds = round(state.updated_at - state.started_at, 2)
        if not lost_lock.is_set():  # otherwise the state is the new holder's to write
            await cache.set(STATE_KEY, state.model_dump_json(), STATE_TTL_S)
        await release(cache, job_id)
        await cache.delete_if(CANCEL_KEY, job_id)
        if on_state:
            on_state(state)
    log.info("reindex.finished job=%s status=%s version=%s seconds=%.1f", job_id, state.status, state.version,
             state.seconds)
    return state


def _finish(state: ReindexState, outcome: IndexOutcome) -> None:
    state.status = "unchanged" if outcome.unchanged else "done"
    state.version = outcome.version
    state.n_photos, state.n_landmarks = outcome.n_photos, outcome.n_landmarks
    state.embedded, state.skipped = outcome.embedded, outcome.skipped
    state.images_per_second = outcome.images_per_second
    state.eta_s = None
    state.figures = {key: outcome.stats.get(key) for key in FIGURES}
    state.single_photo_landmarks = list(outcome.stats.get("single_photo_landmarks") or [])
