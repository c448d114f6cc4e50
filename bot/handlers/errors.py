"""Last line of defence: an unexpected error is logged once and the user still gets a reply."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import ErrorEvent

from bot.locales import Texts, pick_language

log = logging.getLogger(__name__)
router = Router(name="errors")


@router.errors()
async def on_error(event: ErrorEvent) -> bool:
    update = event.update
    log.error("bot.update_failed update=%s error=%s: %s", update.update_id, type(event.exception).__name__,
              event.exception, exc_info=event.exception)
    message = update.message or (update.callback_query.message if update.callback_query else None)
    user = getattr(update.event, "from_user", None)
    if message is not None:
        texts = Texts(pick_language(user.language_code if user else None))
        try:
            await message.answer(texts("internal_error"))
        except Exception:  # the reply itself may be what failed (network, Telegram limits)
            log.warning("bot.error_reply_failed update=%s", update.update_id)
    return True
