"""Run Alembic from code, so `landmarks db upgrade` works from any folder and tests can target any URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.settings import StorageSettings

_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    url = database_url or StorageSettings().resolved_database_url
    config.attributes["database_url"] = url
    return config


def upgrade(revision: str = "head", database_url: str | None = None) -> None:
    if database_url is None:
        StorageSettings().ensure_dirs()
    command.upgrade(alembic_config(database_url), revision)


def downgrade(revision: str, database_url: str | None = None) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(revision: str = "head", database_url: str | None = None) -> None:
    """Alembic's env runs its own event loop, so from async code it runs in a thread."""
    await asyncio.to_thread(upgrade, revision, database_url)
