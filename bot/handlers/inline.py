"""Inline mode: `@bot name` in any chat lists landmark photos; picking one sends it there.

Telegram shows only photos it already has (a file_id) or can fetch by URL. A gallery photo the
bot never sent is uploaded once to STORAGE_CHAT_ID to obtain its file_id, which is stored and
reused forever; without that chat the results are text only, and the log says so once.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import (
    BufferedInputFile,
    ChosenInlineResult,
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InputTextMessageContent,
)

from bot.locales import Texts
from bot.rendering import escape, landmark_name, place_of
from bot.services.recognition import RecognitionFailed
from bot.services.search import search
from bot.settings import BotSettings
from storage.models import Landmark, Photo
from storage.services import Services

log = logging.getLogger(__name__)
router = Router(name="inline")

PAGE_SIZE = 10
_warned_no_storage_chat = False


@router.inline_query()
async def on_inline_query(query: InlineQuery, bot: Bot, services: Services, bot_settings: BotSettings,
                          texts: Texts) -> None:
    offset = int(query.offset) if query.offset.isdigit() else 0
    text = query.query.strip()
    if text:
        try:
            page = await search(services, text, PAGE_SIZE, offset, bot_settings.job_timeout_s)
        except RecognitionFailed:
            await query.answer([], cache_time=5, is_personal=True)
            return
        ids = [hit.landmark_id for hit in page.hits] if page.matched else []
        has_more = page.matched and offset + len(ids) < page.total
    else:
        ids = await services.repos.most_requested_landmarks(PAGE_SIZE + 1, offset)
        has_more = len(ids) > PAGE_SIZE
        ids = ids[:PAGE_SIZE]
    landmarks = await services.repos.get_landmarks(ids)
    results = []
    for landmark_id in ids:
        if landmark_id in landmarks:
            results.append(await _result(bot, services, bot_settings, texts, landmarks[landmark_id]))
    log.info("inline.answered user=%s results=%d offset=%d", query.from_user.id, len(results), offset)
    await query.answer(results, cache_time=bot_settings.inline_cache_time_s,
                       next_offset=str(offset + len(ids)) if has_more else "")


@router.chosen_inline_result()
async def on_chosen(result: ChosenInlineResult) -> None:
    log.info("inline.chosen user=%s result=%s", result.from_user.id, result.result_id)


async def _result(bot: Bot, services: Services, settings: BotSettings, texts: Texts, landmark: Landmark):  # type: ignore[no-untyped-def]
    name, place = landmark_name(landmark, texts.language), place_of(landmark)
    caption = f"<b>{escape(name)}</b>" + (f"\n📍 {escape(place)}" if place else "")
    photos = await services.repos.example_photos(landmark.id, 1)
    file_id = await _file_id(bot, services, settings, photos[0]) if photos else None
    if file_id:
        return InlineQueryResultCachedPhoto(id=landmark.id[:64], photo_file_id=file_id, title=name,
                                            description=place, caption=caption)
    return InlineQueryResultArticle(id=landmark.id[:64], title=name, description=place,
                                    input_message_content=InputTextMessageContent(message_text=caption))


async def _file_id(bot: Bot, services: Services, settings: BotSettings, photo: Photo) -> str | None:
    global _warned_no_storage_chat
    if photo.telegram_file_id:
        return photo.telegram_file_id
    if settings.storage_chat_id is None:
        if not _warned_no_storage_chat:
            log.warning("inline.no_storage_chat: set STORAGE_CHAT_ID so inline results can carry photos")
            _warned_no_storage_chat = True
        return None
    data = services.photos.read(photo.path)
    message = await bot.send_photo(settings.storage_chat_id,
                                   BufferedInputFile(data, filename=f"{photo.sha256[:16]}.jpg"),
                                   disable_notification=True)
    file_id = message.photo[-1].file_id
    await services.repos.remember_file_id(photo.id, file_id)
    return file_id
