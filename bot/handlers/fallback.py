"""Everything that is not a photo or a known command gets a short, useful reply."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.locales import Texts

router = Router(name="fallback")


@router.message(F.text.startswith("/"))
async def on_unknown_command(message: Message, texts: Texts) -> None:
    await message.answer(texts("unknown_command") + texts("help"))


@router.message()
async def on_other(message: Message, texts: Texts) -> None:
    """Stickers, videos, voice, locations...: only photos can be recognised."""
    await message.answer(texts("not_a_photo"))
