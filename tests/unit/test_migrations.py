"""Alembic stairway: every revision upgrades and downgrades cleanly on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from storage.migrate import alembic_config, downgrade, upgrade
from storage.models import Base


def _tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await engine.dispose()
        return names - {"alembic_version"}

    return asyncio.run(read())


def _stairway(url: str) -> None:
    revisions = list(ScriptDirectory.from_config(alembic_config(url)).walk_revisions("base", "heads"))
    for revision in reversed(revisions):
        upgrade(revision.revision, url)
        downgrade(revision.down_revision or "base", url)
        upgrade(revision.revision, url)
    assert _tables(url) == set(Base.metadata.tables)
    downgrade("base", url)
    assert _tables(url) == set()


def test_stairway_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _stairway(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")


def test_stairway_on_postgresql(postgres_url: str) -> None:
    _stairway(postgres_url)
