"""The job queue between bot and workers: Redis Streams with a consumer group, or in-process.

The bot calls `submit(job)` and awaits the worker's `JobResult`. Workers call
`consume(batch_size, timeout)` and `complete(delivery, result)`; a job is acknowledged
only after its result is stored, so a worker killed mid-job leaves it pending and another
worker reclaims it (`XAUTOCLAIM`) after `reclaim_after_ms`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from storage.schemas import Job, JobResult

log = logging.getLogger(__name__)


# A Redis client gives up on a read after its socket timeout (5 s by default since redis-py 8), and a blocking
# pop is a read: a bot waiting longer for a job (a worker still loading its models) got a socket error instead
# of its answer. Blocking calls wait in slices well under any sane socket timeout; a slice returns as soon as
# the reply is there, so the answer is no later.
BLOCK_SLICE_S = 1.0


class QueueTimeout(TimeoutError):
    pass


@dataclass
class Delivery:
    job: Job
    receipt: str  # stream entry id, or "" in process


class JobQueue(ABC):
    @abstractmethod
    async def submit(self, job: Job, timeout: float = 60.0) -> JobResult: ...

    @abstractmethod
    async def consume(self, batch_size: int, timeout: float) -> list[Delivery]: ...

    @abstractmethod
    async def complete(self, delivery: Delivery, result: JobResult) -> None: ...

    @abstractmethod
    async def length(self) -> int: ...

    async def close(self) -> None:
        return None


class InProcessQueue(JobQueue):
    """Same contract inside one process: the embedded default when REDIS_URL is unset."""

    def __init__(self) -> None:
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[JobResult]] = {}

    async def submit(self, job: Job, timeout: float = 60.0) -> JobResult:
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._waiting[job.id] = future
        await self._jobs.put(job)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError as exc:
            raise QueueTimeout(job.id) from exc
        finally:
            self._waiting.pop(job.id, None)

    async def consume(self, batch_size: int, timeout: float) -> list[Delivery]:
        try:
            first = await asyncio.wait_for(self._jobs.get(), timeout)
        except asyncio.TimeoutError:
            return []
        batch = [Delivery(first, "")]
        while len(batch) < batch_size and not self._jobs.empty():
            batch.append(Delivery(self._jobs.get_nowait(), ""))
        return batch

    async def complete(self, delivery: Delivery, result: JobResult) -> None:
        future = self._waiting.get(delivery.job.id)
        if future is not None and not future.done():
            future.set_result(result)

    async def length(self) -> int:
        return self._jobs.qsize()


class RedisStreamQueue(JobQueue):
    """Redis Streams: XADD by the bot, XREADGROUP by N workers, the result on a per-job list."""

    def __init__(
        self, redis: Redis, prefix: str = "landmarks", consumer: str | None = None,
        result_ttl_s: int = 300, reclaim_after_ms: int = 60_000,
    ) -> None:
        self.redis = redis
        self.stream = f"{prefix}:jobs"
        self.group = f"{prefix}:workers"
        self.result_prefix = f"{prefix}:result:"
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.result_ttl_s = result_ttl_s
        self.reclaim_after_ms = reclaim_after_ms
        self._group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def submit(self, job: Job, timeout: float = 60.0) -> JobResult:
        await self._ensure_group()
        await self.redis.xadd(self.stream, {"job": job.model_dump_json()}, maxlen=100_000, approximate=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            reply = await self.redis.blpop([self.result_prefix + job.id], timeout=min(BLOCK_SLICE_S, remaining))
            if reply is not None:
                return JobResult.model_validate_json(reply[1])
        raise QueueTimeout(job.id)

    async def consume(self, batch_size: int, timeout: float) -> list[Delivery]:
        await self._ensure_group()
        deliveries = await self._reclaim(batch_size)
        if not deliveries:
            block_ms = max(1, int(min(timeout, BLOCK_SLICE_S) * 1000))  # the caller polls again
            response = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=batch_size, block=block_ms
            )
            for _stream, entries in response or []:
                deliveries.extend(self._parse(entries))
        return deliveries

    async def _reclaim(self, count: int) -> list[Delivery]:
        """Jobs a dead worker took but never acknowledged."""
        _next, entries, *_ = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=self.reclaim_after_ms, start_id="0-0", count=count
        )
        if entries:
            log.warning("queue.reclaimed count=%d consumer=%s", len(entries), self.consumer)
        return self._parse(entries)

    def _parse(self, entries: list) -> list[Delivery]:
        out = []
        for entry_id, fields in entries:
            if not fields:
                continue
            raw = fields.get(b"job") or fields.get("job")
            out.append(Delivery(Job.model_validate_json(raw), entry_id.decode() if isinstance(entry_id, bytes) else entry_id))
        return out

    async def complete(self, delivery: Delivery, result: JobResult) -> None:
        key = self.result_prefix + delivery.job.id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, result.model_dump_json())
            pipe.expire(key, self.result_ttl_s)
            pipe.xack(self.stream, self.group, delivery.receipt)
            pipe.xdel(self.stream, delivery.receipt)
            await pipe.execute()

    async def length(self) -> int:
        await self._ensure_group()
        groups = await self.redis.xinfo_groups(self.stream)
        for group in groups:
            name = group.get("name") or group.get(b"name")
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                lag = group.get("lag") if "lag" in group else group.get(b"lag")
                pending = group.get("pending") if "pending" in group else group.get(b"pending")
                return int(lag or 0) + int(pending or 0)
        return 0

    async def close(self) -> None:
        await self.redis.aclose()
