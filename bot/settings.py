"""Bot settings: token, where the Bot API lives, who is an admin, how long to wait for a worker."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = Field(default=None, description="Token from @BotFather.")
    telegram_api_url: str = Field(default="https://api.telegram.org",
                                  description="Bot API base URL; a self-hosted Bot API server or a test emulator.")
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, description="Telegram user ids of administrators.")
    job_timeout_s: float = Field(default=60.0, description="How long the bot waits for a worker's answer.")
    example_photos: int = Field(default=3, description="Gallery photos shown with an answer.")
    more_photos: int = Field(default=6, description="Gallery photos shown by the 'more photos' button.")
    storage_chat_id: int | None = Field(
        default=None, description="Chat where the bot uploads gallery photos once to get Telegram file_ids for "
                                  "inline results; without it inline results are text only.")
    search_page_size: int = Field(default=5, ge=1, le=10, description="Landmarks on one page of search results.")
    inline_cache_time_s: int = Field(default=300, description="How long Telegram caches an inline answer.")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("bot_token", "storage_chat_id", mode="before")
    @classmethod
    def _empty_token(cls, value: object) -> object:
        return value or None
