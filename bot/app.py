"""Bot and Dispatcher factories: the Bot API base URL comes from settings, routers per area."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage

from bot.handlers import (
    admin,
    errors,
    fallback,
    feedback,
    gallery_admin,
    inline,
    photo,
    search,
    start,
)
from bot.handlers.start import register_commands
from bot.middlewares.user import UserMiddleware
from bot.services.admins import admin_ids, show_admin_commands
from bot.settings import BotSettings
from storage.services import Services

log = logging.getLogger(__name__)


class MissingToken(RuntimeError):
    pass


def create_bot(settings: BotSettings) -> Bot:
    if settings.bot_token is None:
        raise MissingToken("BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/")))
    return Bot(settings.bot_token.get_secret_value(), session=session,
               default=DefaultBotProperties(parse_mode=ParseMode.HTML))


def create_dispatcher(services: Services, settings: BotSettings) -> Dispatcher:
    # Dialogue state (a new landmark's details, a typed correction) lives in Redis when there is one,
    # so a restarted bot resumes a dialogue instead of forgetting it.
    storage = (RedisStorage.from_url(services.settings.redis_url,
                                     key_builder=DefaultKeyBuilder(prefix=f"{services.settings.queue_name}:fsm"))
               if services.settings.redis_url else MemoryStorage())
    dispatcher = Dispatcher(storage=storage, services=services, bot_settings=settings)
    user_middleware = UserMiddleware(services)
    dispatcher.message.outer_middleware(user_middleware)
    dispatcher.callback_query.outer_middleware(user_middleware)
    dispatcher.inline_query.outer_middleware(user_middleware)
    dispatcher.include_routers(errors.router, start.router, gallery_admin.router, admin.router, feedback.router,
                                search.router, inline.router, photo.router, fallback.router)
    dispatcher.startup.register(_on_startup)
    return dispatcher


async def _on_startup(bot: Bot, services: Services, bot_settings: BotSettings) -> None:
    me = await bot.get_me()
    await bot.delete_webhook(drop_pending_updates=False)
    await register_commands(bot)
    await show_admin_commands(bot, await admin_ids(bot_settings, services))
    log.info("bot.started username=%s id=%s", me.username, me.id)


async def run_polling(services: Services, settings: BotSettings) -> None:
    bot = create_bot(settings)
    dispatcher = create_dispatcher(services, settings)
    try:
        await dispatcher.start_polling(bot, handle_signals=False, polling_timeout=20)
    finally:
        await bot.session.close()
