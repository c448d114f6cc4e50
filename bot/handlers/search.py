"""/search NAME, or a name typed without a command: matching landmarks with photos and paging."""

from __future__ import annotations

import logging
import unicodedata

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.keyboards import LandmarkPhotosCallback, SearchPageCallback, search_keyboard
from bot.locales import Texts
from bot.rendering import escape, landmark_name, place_of
from bot.services.gallery_media import (
    answer_button_with_photos,
    callback_chat_id,
    send_gallery_photos,
)
from bot.services.recognition import RecognitionFailed
from bot.services.search import recall_query, remember_query, search
from bot.settings import BotSettings
from storage.services import Services

log = logging.getLogger(__name__)
router = Router(name="search")

SHOWN_QUERY_CHARS = 64


@router.message(Command("search"))
async def on_search_command(message: Message, command: CommandObject, bot: Bot, services: Services,
                            bot_settings: BotSettings, texts: Texts) -> None:
    query = (command.args or "").strip()
    if not query:
        await message.answer(texts("search_usage"))
        return
    await answer_search(message.chat.id, query, 0, bot, services, bot_settings, texts)


@router.message(F.text & ~F.text.startswith("/"))
async def on_text(message: Message, bot: Bot, services: Services, bot_settings: BotSettings, texts: Texts) -> None:
    await answer_search(message.chat.id, message.text.strip(), 0, bot, services, bot_settings, texts)


@router.callback_query(SearchPageCallback.filter())
async def on_page(query: CallbackQuery, callback_data: SearchPageCallback, bot: Bot, services: Services,
                  bot_settings: BotSettings, texts: Texts) -> None:
    text = await recall_query(services, callback_data.token)
    if text is None:
        await query.answer(texts("search_expired"))
        return
    await query.answer()
    await answer_search(callback_chat_id(query), text, callback_data.offset, bot, services, bot_settings, texts,
                        token=callback_data.token)


@router.callback_query(LandmarkPhotosCallback.filter())
async def on_landmark_photos(query: CallbackQuery, callback_data: LandmarkPhotosCallback, bot: Bot,
                             services: Services, bot_settings: BotSettings, texts: Texts) -> None:
    photos = await services.repos.example_photos(callback_data.landmark_id, bot_settings.more_photos)
    await answer_button_with_photos(query, bot, services, photos, texts)


async def answer_search(chat_id: int, query: str, offset: int, bot: Bot, services: Services,
                        settings: BotSettings, texts: Texts, token: str | None = None) -> None:
    printable = "".join(ch for ch in query if unicodedata.category(ch)[0] != "C")
    shown_query = escape(printable[:SHOWN_QUERY_CHARS] + ("…" if len(printable) > SHOWN_QUERY_CHARS else ""))
    async with ChatActionSender.upload_photo(bot=bot, chat_id=chat_id):
        try:
            result = await search(services, query, settings.search_page_size, offset, settings.job_timeout_s)
        except RecognitionFailed as exc:
            await bot.send_message(chat_id, texts(exc.code))
            return
        landmarks = await services.repos.get_landmarks([hit.landmark_id for hit in result.hits])
        hits = [hit for hit in result.hits if hit.landmark_id in landmarks]
        log.info("search.answered chat=%s matched=%s total=%d offset=%d", chat_id, result.matched, result.total,
                 offset)
        names = {hit.landmark_id: landmark_name(landmarks[hit.landmark_id], texts.language) for hit in hits}
        if result.matched:
            photos = []
            for hit in hits:
                photos.extend(await services.repos.example_photos(hit.landmark_id, 1))
            captions = [names[p.landmark_id] for p in photos]
            await send_gallery_photos(bot, services, chat_id, photos, captions=captions)
            header = texts("search_header", query=shown_query, first=offset + 1, last=offset + len(hits),
                           total=result.total)
        else:
            header = texts("search_none", query=shown_query) if shown_query.strip() else texts("search_usage")
        lines = [header]
        for rank, hit in enumerate(hits, start=offset + 1):
            place = place_of(landmarks[hit.landmark_id])
            lines.append(texts("search_line", rank=rank, name=escape(names[hit.landmark_id]), place=escape(place),
                               score=round(100 * max(hit.fuzzy, hit.semantic))))
        if not result.matched:
            lines.append("")
            lines.append(texts("search_none_hint"))
        token = token or await remember_query(services, query)
        keyboard = search_keyboard(texts, token, offset, settings.search_page_size, result.total if result.matched else 0,
                                   [(hit.landmark_id, names[hit.landmark_id]) for hit in hits])
        await bot.send_message(chat_id, "\n".join(lines), reply_markup=keyboard)
