"""Who is an administrator, and the command menu only administrators see.

Admins are the ids in ADMIN_IDS plus those promoted with /admin add (stored in the database,
so a promotion survives restarts and reaches every bot replica).
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.types import BotCommand, BotCommandScopeChat, TelegramObject, User

from bot.locales import LANGUAGES, Texts
from bot.settings import BotSettings
from storage.services import Services

log = logging.getLogger(__name__)

USER_COMMANDS = ("start", "search", "help")
ADMIN_COMMANDS = ("reindex", "add", "remove", "review", "stats", "admin")


async def admin_ids(settings: BotSettings, services: Services) -> set[int]:
    return set(settings.admin_ids) | await services.repos.admin_ids()


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, event_from_user: User | None, bot_settings: BotSettings,
                       services: Services) -> bool:
        return event_from_user is not None and event_from_user.id in await admin_ids(bot_settings, services)


async def show_admin_commands(bot: Bot, user_ids: set[int]) -> None:
    """The user menu plus the admin commands, in each admin's private chat only."""
    for user_id in sorted(user_ids):
        for language in (None, *LANGUAGES):
            texts = Texts(language or "en")
            commands = [BotCommand(command=name, description=texts(f"cmd_{name}"))
                        for name in (*USER_COMMANDS, *ADMIN_COMMANDS)]
            try:
                await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=user_id),
                                          language_code=language)
            except TelegramAPIError as exc:  # an admin who never opened the bot has no chat yet
                log.warning("admin.commands_not_set user=%s error=%s", user_id, exc)
                break
