"""Result cache: Redis with a TTL when REDIS_URL is set, a bounded in-memory LRU otherwise.

Keys carry the index version, so answers of an old index stop being served the moment a
new version becomes active.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict

from redis.asyncio import Redis


class Cache(ABC):
    @abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, key: str, value: str, ttl_s: int) -> None: ...

    @abstractmethod
    async def add(self, key: str, value: str, ttl_s: int) -> bool:
        """Set only if absent (a lock): True when this call set it."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def extend_if(self, key: str, value: str, ttl_s: int) -> bool:
        """Renew the TTL only while `key` still holds `value` (a lock's owner); True when it did, atomically."""

    @abstractmethod
    async def delete_if(self, key: str, value: str) -> bool:
        """Delete only while `key` still holds `value`; True when it did, atomically."""

    @abstractmethod
    async def keys(self, prefix: str) -> list[str]:
        """Live keys starting with `prefix` (few: used for worker heartbeats)."""

    async def close(self) -> None:
        return None


class MemoryCache(Cache):
    def __init__(self, max_items: int = 10_000) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self.max_items = max_items

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return value

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        self._items[key] = (time.monotonic() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    async def add(self, key: str, value: str, ttl_s: int) -> bool:
        if await self.get(key) is not None:
            return False
        await self.set(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def extend_if(self, key: str, value: str, ttl_s: int) -> bool:  # one event loop: nothing interleaves
        if await self.get(key) != value:
            return False
        await self.set(key, value, ttl_s)
        return True

    async def delete_if(self, key: str, value: str) -> bool:
        if await self.get(key) != value:
            return False
        await self.delete(key)
        return True

    async def keys(self, prefix: str) -> list[str]:
        return [key for key in list(self._items) if key.startswith(prefix) and await self.get(key) is not None]


# Compare-then-act in one step on the server (the Redis documentation's pattern for releasing a lock safely).
_EXTEND_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisCache(Cache):
    def __init__(self, redis: Redis, prefix: str = "landmarks") -> None:
        self.redis = redis
        self.prefix = f"{prefix}:cache:"
        self._extend_if = redis.register_script(_EXTEND_IF)
        self._delete_if = redis.register_script(_DELETE_IF)

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        await self.redis.set(self.prefix + key, value, ex=ttl_s)

    async def add(self, key: str, value: str, ttl_s: int) -> bool:
        return bool(await self.redis.set(self.prefix + key, value, ex=ttl_s, nx=True))

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def extend_if(self, key: str, value: str, ttl_s: int) -> bool:
        return bool(await self._extend_if(keys=[self.prefix + key], args=[value, ttl_s]))

    async def delete_if(self, key: str, value: str) -> bool:
        return bool(await self._delete_if(keys=[self.prefix + key], args=[value]))

    async def keys(self, prefix: str) -> list[str]:
        found = [key async for key in self.redis.scan_iter(f"{self.prefix}{prefix}*", count=500)]
        return [(k.decode() if isinstance(k, bytes) else k)[len(self.prefix):] for k in found]

    async def close(self) -> None:
        await self.redis.aclose()


def result_key(index_version: str, sha256: str) -> str:
    return f"result:{index_version}:{sha256}"


def file_key(file_unique_id: str) -> str:
    """Telegram's file_unique_id → content hash, so a re-sent photo needs no download."""
    return f"file:{file_unique_id}"


WORKER_KEY_PREFIX = "worker:"


def worker_key(worker_id: str) -> str:
    """A live worker keeps this key fresh; /stats counts them."""
    return WORKER_KEY_PREFIX + worker_id
