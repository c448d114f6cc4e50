"""Settings every process shares: where data lives, which database, which Redis.

One pydantic-settings class per concern, all read from the environment (and `.env`),
so the bot, the worker and the CLI agree on the same folders and services without
passing flags around.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class StorageSettings(BaseSettings):
    """Database, Redis and the data folder."""

    model_config = _ENV

    data_dir: Path = Field(default=Path("./data"), description="Every file the service writes lives here.")
    database_url: str | None = Field(default=None, description="SQLAlchemy async URL; SQLite under DATA_DIR when unset.")
    redis_url: str | None = Field(default=None, description="Redis for cache and queue; in-process when unset.")
    cache_ttl_s: int = Field(default=7 * 24 * 3600, description="How long a recognition result stays cached.")
    queue_name: str = Field(default="landmarks", description="Prefix of Redis keys (stream, results, cache).")

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def resolved_database_url(self) -> str:
        """The URL SQLAlchemy gets: PostgreSQL URLs are moved onto asyncpg."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'landmarks.sqlite3').resolve()}"
        url = self.database_url
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix):]
        return url

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.photos_dir, self.index_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_storage_settings() -> StorageSettings:
    return StorageSettings()
