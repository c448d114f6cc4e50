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
LOCK_TTL_S = 20  # a worker killed mid-build frees the lock after this long
# ... and is declared gone a little later: the builder renews the lock just before it rewrites the state, so one
# killed between the two leaves a lock up to a heartbeat (1 s) younger than its state. Declared gone at the lock's
# TTL, an admin's /reindex right after "lost" found the lock still held and got "busy" (seen once in CI).
GONE_AFTER_S = LOCK_TTL_S + 3
STATE_TTL_S = 7 * 24 * 3600


async def read_state(cache: Cache) -> ReindexState | None:
    raw = await cache.get(STATE_KEY)
    return ReindexState.model_validate_json(raw) if raw else None


def is_alive(state: ReindexState | None) -> bool:
    """A running reindex whose worker is still beating."""
    return state is not None and not state.finished and time.time() - state.updated_at < GONE_AFTER_S


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
