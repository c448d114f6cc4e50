"""Who is talking: the user row (first/last seen, language) and the texts in their language."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.locales import Texts, pick_language
from storage.services import Services

TOUCH_INTERVAL_S = 60.0


class UserMiddleware(BaseMiddleware):
    """Adds `texts` to handler data; writes the user at most once a minute, not on every update."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._touched: dict[int, tuple[float, str]] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        language = pick_language(user.language_code if user else None)
        data["texts"] = Texts(language)
        if user is not None:
            last = self._touched.get(user.id)
            if last is None or time.monotonic() - last[0] > TOUCH_INTERVAL_S or last[1] != language:
                await self.services.repos.touch_user(user.id, username=user.username, first_name=user.first_name,
                                                     language=language)
                self._touched[user.id] = (time.monotonic(), language)
        return await handler(event, data)
