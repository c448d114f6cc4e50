"""Shared fixtures: the dev dataset (skipped with a message when ../shared is missing),
a fresh PostgreSQL database and a Redis prefix per test session, and temporary DATA_DIRs."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get("LANDMARKS_DEV_DATASET", ROOT.parent / "shared" / "datasets" / "landmarks-dev"))
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def dataset() -> Path:
    if not (DATASET / "split.csv").exists():
        pytest.skip(f"the dev dataset is missing at {DATASET} (../shared/datasets is not beside this checkout)")
    return DATASET


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database of its own for each test that asks, dropped afterwards."""
    name = f"landmarks_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc} (.ci/run starts it)")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """Keys of one test live under a prefix of their own and are deleted afterwards."""
    prefix = f"landmarks-test-{uuid.uuid4().hex[:8]}"
    yield prefix

    async def cleanup() -> None:
        from redis.asyncio import Redis

        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()

    asyncio.run(cleanup())


@pytest.fixture
async def redis_client() -> AsyncIterator[object]:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except OSError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc} (.ci/run starts it)")
    yield redis
    await redis.aclose()


FIGURES: list[str] = []
"""Measured figures (latency, quality) that tests print at the end of the run; never asserted on time."""


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
