"""Sending gallery photos: uploads once, then reuses Telegram's file_id forever."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.media_group import MediaGroupBuilder

from bot.locales import Texts
from storage.models import Photo
from storage.services import Services

log = logging.getLogger(__name__)


async def send_gallery_photos(bot: Bot, services: Services, chat_id: int, photos: list[Photo],
                              captions: list[str] | None = None) -> list[Message]:
    """One photo as sendPhoto, 2–10 as a media group (a caption per photo, plain text); new file_ids are
    stored for next time."""
    if not photos:
        return []
    media = []
    for photo in photos[:10]:
        if photo.telegram_file_id:
            media.append(photo.telegram_file_id)
        else:
            data = services.photos.read(photo.path)
            media.append(BufferedInputFile(data, filename=f"{photo.sha256[:16]}.jpg"))
    captions = captions or [None] * len(media)
    if len(media) == 1:
        messages = [await bot.send_photo(chat_id, media[0], caption=captions[0], parse_mode=None)]
    else:
        builder = MediaGroupBuilder()
        for item, caption in zip(media, captions):
            builder.add_photo(media=item, caption=caption, parse_mode=None)
        messages = await bot.send_media_group(chat_id, media=builder.build())
    for photo, message in zip(photos, messages):
        if not photo.telegram_file_id and message.photo:
            await services.repos.remember_file_id(photo.id, message.photo[-1].file_id)
    return messages


def callback_chat_id(query: CallbackQuery) -> int:
    """The chat a button was pressed in (the message may be too old for Telegram to include it)."""
    return query.message.chat.id if query.message else query.from_user.id


async def answer_button_with_photos(query: CallbackQuery, bot: Bot, services: Services, photos: list[Photo],
                                    texts: Texts) -> None:
    """A "photos" button: the photos, or a short notice when there are none left to show."""
    if not photos:
        await query.answer(texts("no_more_photos"))
        return
    await query.answer()
    await send_gallery_photos(bot, services, callback_chat_id(query), photos)
