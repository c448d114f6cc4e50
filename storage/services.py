"""The shared infrastructure one process holds: database, cache, queue, photo store.

Built from settings in one place, so the bot, the worker and the CLI run the same code
on the embedded defaults (SQLite, in-memory cache, in-process queue) and on PostgreSQL +
Redis. In embedded mode the bot and the worker must share one `Services` object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.cache import Cache, MemoryCache, RedisCache
from storage.db import create_engine, create_session_factory
from storage.photo_store import PhotoStore
from storage.queue import InProcessQueue, JobQueue, RedisStreamQueue
from storage.repositories import Repositories
from storage.settings import StorageSettings

ACTIVE_VERSION_TTL_S = 2.0


@dataclass
class Services:
    settings: StorageSettings
    engine: AsyncEngine
    repos: Repositories
    cache: Cache
    queue: JobQueue
    photos: PhotoStore
    _active: tuple[float, str | None] = field(default=(0.0, None))

    @classmethod
    def create(cls, settings: StorageSettings) -> Services:
        settings.ensure_dirs()
        engine = create_engine(settings)
        if settings.redis_url:
            cache: Cache = RedisCache(Redis.from_url(settings.redis_url), settings.queue_name)
            queue: JobQueue = RedisStreamQueue(Redis.from_url(settings.redis_url), settings.queue_name)
        else:
            cache, queue = MemoryCache(), InProcessQueue()
        return cls(settings, engine, Repositories(create_session_factory(engine)), cache, queue,
                   PhotoStore(settings.photos_dir))

    async def active_version(self) -> str | None:
        """The serving index version, re-read from the database at most every few seconds."""
        checked, version = self._active
        if time.monotonic() - checked > ACTIVE_VERSION_TTL_S:
            row = await self.repos.active_index()
            version = row.version if row else None
            self._active = (time.monotonic(), version)
        return version

    async def close(self) -> None:
        await self.queue.close()
        await self.cache.close()
        await self.engine.dispose()
