"""The reindex's shared state in the cache, read by the bot and written by the worker that builds.

Kept here, beside the cache, so the bot reads progress without importing any model code.
"""

from __future__ import annotations

import time

from storage.cache import Cache
from storage.schemas import ReindexState

LOCK_KEY = "reindex:lock"
STATE_KEY = "reindex:state"
CANCEL_KEY = "reindex:cancel"
LOCK_TTL_S = 20  # a worker killed mid-build frees the lock, and is declared gone, after this long
STATE_TTL_S = 7 * 24 * 3600


async def read_state(cache: Cache) -> ReindexState | None:
    raw = await cache.get(STATE_KEY)
    return ReindexState.model_validate_json(raw) if raw else None


def is_alive(state: ReindexState | None) -> bool:
    """A running reindex whose worker is still beating."""
    return state is not None and not state.finished and time.time() - state.updated_at < LOCK_TTL_S


async def request_cancel(cache: Cache) -> ReindexState | None:
    """Ask the running reindex to stop at its next photo; returns it, or None when nothing runs."""
    state = await read_state(cache)
    if not is_alive(state):
        return None
    await cache.set(CANCEL_KEY, state.job_id, LOCK_TTL_S * 10)
    return state


async def acquire(cache: Cache, job_id: str) -> bool:
    return await cache.add(LOCK_KEY, job_id, LOCK_TTL_S)


async def keep(cache: Cache, job_id: str) -> bool:
    """Renew this job's lock; False when another job holds it now (this one's TTL lapsed and it was taken)."""
    return await cache.extend_if(LOCK_KEY, job_id, LOCK_TTL_S) or await acquire(cache, job_id)


async def release(cache: Cache, job_id: str) -> None:
    """Free the lock if this job still holds it (after a TTL lapse another job may)."""
    await cache.delete_if(LOCK_KEY, job_id)
