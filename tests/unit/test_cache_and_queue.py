"""Cache and queue contracts, on the in-process defaults and on a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from storage.cache import MemoryCache, RedisCache
from storage.queue import InProcessQueue, QueueTimeout, RedisStreamQueue
from storage.schemas import Job, JobResult


async def _serve_once(queue, answer: str = "done") -> None:  # type: ignore[no-untyped-def]
    deliveries = []
    while not deliveries:
        deliveries = await queue.consume(batch_size=4, timeout=0.5)
    for delivery in deliveries:
        await queue.complete(delivery, JobResult(job_id=delivery.job.id, ok=True, error=answer))


@pytest.mark.asyncio
async def test_memory_cache_expires_and_evicts() -> None:
    cache = MemoryCache(max_items=2)
    await cache.set("a", "1", ttl_s=60)
    await cache.set("b", "2", ttl_s=60)
    await cache.set("c", "3", ttl_s=60)
    assert await cache.get("a") is None and await cache.get("c") == "3"
    await cache.set("d", "4", ttl_s=0)
    await asyncio.sleep(0.01)
    assert await cache.get("d") is None


@pytest.mark.asyncio
async def test_redis_cache_round_trip_with_ttl(redis_client: Redis, redis_prefix: str) -> None:
    cache = RedisCache(redis_client, redis_prefix)
    await cache.set("k", "v", ttl_s=30)
    assert await cache.get("k") == "v"
    assert 0 < await redis_client.ttl(f"{redis_prefix}:cache:k") <= 30


async def _lock_contract(cache) -> None:  # type: ignore[no-untyped-def]
    assert await cache.add("lock", "first", ttl_s=30)
    assert not await cache.add("lock", "second", ttl_s=30)
    assert await cache.get("lock") == "first"
    await cache.set("worker:a", "1", ttl_s=30)
    await cache.set("worker:b", "1", ttl_s=30)
    assert sorted(await cache.keys("worker:")) == ["worker:a", "worker:b"]
    await cache.delete("lock")
    assert await cache.add("lock", "third", ttl_s=30)
    assert not await cache.extend_if("lock", "first", ttl_s=60)  # not its owner any more
    assert not await cache.delete_if("lock", "first") and await cache.get("lock") == "third"
    assert await cache.extend_if("lock", "third", ttl_s=60)
    assert await cache.delete_if("lock", "third") and await cache.get("lock") is None
    assert not await cache.extend_if("lock", "third", ttl_s=60)  # gone: nothing to extend


@pytest.mark.asyncio
async def test_memory_cache_lock_and_keys() -> None:
    await _lock_contract(MemoryCache())


@pytest.mark.asyncio
async def test_redis_cache_lock_and_keys(redis_client: Redis, redis_prefix: str) -> None:
    await _lock_contract(RedisCache(redis_client, redis_prefix))


@pytest.mark.asyncio
async def test_in_process_queue_answers_the_submitter() -> None:
    queue = InProcessQueue()
    job = Job(kind="ping")
    worker = asyncio.create_task(_serve_once(queue, "pong"))
    result = await queue.submit(job, timeout=5)
    await worker
    assert result.job_id == job.id and result.error == "pong"


@pytest.mark.asyncio
async def test_in_process_queue_times_out() -> None:
    with pytest.raises(QueueTimeout):
        await InProcessQueue().submit(Job(kind="ping"), timeout=0.05)


@pytest.mark.asyncio
async def test_redis_queue_spreads_jobs_over_workers(redis_client: Redis, redis_prefix: str) -> None:
    bot_side = RedisStreamQueue(redis_client, redis_prefix)
    workers = [RedisStreamQueue(redis_client, redis_prefix, consumer=f"w{i}") for i in range(2)]
    jobs = [Job(kind="ping") for _ in range(6)]
    served = [asyncio.create_task(_serve_forever(w)) for w in workers]
    results = await asyncio.gather(*(bot_side.submit(job, timeout=10) for job in jobs))
    for task in served:
        task.cancel()
    assert [r.job_id for r in results] == [j.id for j in jobs]
    assert await bot_side.length() == 0


async def test_redis_queue_waits_for_a_job_longer_than_the_clients_socket_timeout(redis_prefix: str) -> None:
    """A worker still loading its models answers late; the bot must wait for it, not fail on a socket read."""
    from tests.conftest import REDIS_URL

    client = Redis.from_url(REDIS_URL, socket_timeout=2)  # redis-py 8's default is 5 s: the same, sooner
    try:
        bot_side = RedisStreamQueue(client, redis_prefix)
        worker = RedisStreamQueue(client, redis_prefix, consumer="late")

        async def serve_late() -> None:
            await asyncio.sleep(3)
            await _serve_once(worker)

        serving = asyncio.create_task(serve_late())
        result = await bot_side.submit(Job(kind="ping"), timeout=10)
        await serving
        assert result.ok
        with pytest.raises(QueueTimeout):  # and with nobody serving, the queue's own timeout still holds
            await bot_side.submit(Job(kind="ping"), timeout=2.5)
    finally:
        await client.aclose()


async def _serve_forever(queue: RedisStreamQueue) -> None:
    while True:
        await _serve_once(queue)


@pytest.mark.asyncio
async def test_redis_queue_reclaims_a_dead_workers_job(redis_client: Redis, redis_prefix: str) -> None:
    bot_side = RedisStreamQueue(redis_client, redis_prefix)
    dead = RedisStreamQueue(redis_client, redis_prefix, consumer="dead", reclaim_after_ms=100)
    alive = RedisStreamQueue(redis_client, redis_prefix, consumer="alive", reclaim_after_ms=100)
    job = Job(kind="ping")
    submitted = asyncio.create_task(bot_side.submit(job, timeout=10))
    taken = []
    while not taken:
        taken = await dead.consume(batch_size=1, timeout=0.5)  # ...and the worker dies without completing
    await asyncio.sleep(0.2)
    reclaimed = await alive.consume(batch_size=1, timeout=0.5)
    assert [d.job.id for d in reclaimed] == [job.id]
    await alive.complete(reclaimed[0], JobResult(job_id=job.id, ok=True))
    assert (await submitted).ok


def test_a_silent_reindex_is_declared_gone_only_once_its_lock_can_have_expired() -> None:
    """The builder renews the lock, then writes the state: killed between the two, its lock is up to a heartbeat
    younger than its state. "Lost" must mean the next /reindex can take the lock."""
    import time

    from ml.reindex import HEARTBEAT_S
    from storage import reindex_state
    from storage.schemas import ReindexState

    def state(silent_for: float) -> ReindexState:
        now = time.time()
        return ReindexState(job_id="j", started_at=now - 60, updated_at=now - silent_for)

    renewed_after_the_state = reindex_state.LOCK_TTL_S + HEARTBEAT_S
    assert reindex_state.GONE_AFTER_S > renewed_after_the_state
    assert reindex_state.is_alive(state(renewed_after_the_state - 0.1))
    assert not reindex_state.is_alive(state(reindex_state.GONE_AFTER_S + 0.1))
