"""A photo (or an image sent as a file) → the answer: top 5, categories, examples, venue, buttons."""

from __future__ import annotations

import logging
from pathlib import PurePath

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from bot.keyboards import answer_keyboard
from bot.locales import Texts
from bot.rendering import landmark_name, place_of, render_result
from bot.services.gallery_media import send_gallery_photos
from bot.services.recognition import (
    Answer,
    RecognitionFailed,
    cached_by_file,
    recognize_bytes,
)
from bot.settings import BotSettings
from storage.images import MAX_FILE_BYTES, ImageRejected
from storage.services import Services

log = logging.getLogger(__name__)
router = Router(name="photo")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic"}
REJECT_TEXT = {"not_image": "not_image_document", "corrupt": "corrupt_image",
               "too_many_pixels": "too_many_pixels", "too_large": "file_too_large"}


@router.message(F.photo)
async def on_photo(message: Message, bot: Bot, services: Services, bot_settings: BotSettings, texts: Texts) -> None:
    photo = message.photo[-1]
    await answer_photo(message, bot, services, bot_settings, texts, photo.file_id, photo.file_unique_id,
                       photo.file_size)


@router.message(F.document)
async def on_document(message: Message, bot: Bot, services: Services, bot_settings: BotSettings,
                      texts: Texts) -> None:
    document = message.document
    mime = (document.mime_type or "").lower()
    suffix = PurePath(document.file_name or "").suffix.lower()
    if not (mime.startswith("image/") or suffix in IMAGE_SUFFIXES):
        await message.answer(texts("not_image_document"))
        return
    await answer_photo(message, bot, services, bot_settings, texts, document.file_id, document.file_unique_id,
                       document.file_size)


async def answer_photo(message: Message, bot: Bot, services: Services, settings: BotSettings, texts: Texts,
                       file_id: str, file_unique_id: str, file_size: int | None) -> None:
    if file_size and file_size > MAX_FILE_BYTES:
        await message.answer(texts("file_too_large"))
        return
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        answer = await cached_by_file(services, file_unique_id)
        if answer is None:
            answer = await _recognize(message, bot, services, settings, texts, file_id, file_unique_id)
            if answer is None:
                return
        await _reply(message, bot, services, settings, texts, answer, file_id)


async def _recognize(message: Message, bot: Bot, services: Services, settings: BotSettings, texts: Texts,
                     file_id: str, file_unique_id: str) -> Answer | None:
    try:
        buffer = await bot.download(file_id)
    except TelegramBadRequest as exc:
        log.info("photo.download_refused user=%s error=%s", message.chat.id, exc.message)
        await message.answer(texts("file_too_large" if "too big" in exc.message else "corrupt_image"))
        return None
    try:
        return await recognize_bytes(services, buffer.read(), file_unique_id, settings.job_timeout_s)
    except ImageRejected as exc:
        log.info("photo.rejected user=%s reason=%s", message.chat.id, exc.reason)
        await message.answer(texts(REJECT_TEXT[exc.reason]))
    except RecognitionFailed as exc:
        await message.answer(texts(exc.code))
    return None


async def _reply(message: Message, bot: Bot, services: Services, settings: BotSettings, texts: Texts,
                 answer: Answer, file_id: str) -> None:
    result = answer.result
    recognition_id = await services.repos.add_recognition(
        user_id=message.from_user.id if message.from_user else None, photo_sha256=answer.sha256,
        telegram_file_id=file_id, result=result.model_dump(mode="json"),
        top_landmark_id=result.best.landmark_id if result.best else None, recognized=result.recognized,
        index_version=result.index_version, latency_ms=answer.latency_ms, from_cache=answer.from_cache,
    )
    log.info("photo.answered user=%s recognition=%d landmark=%s p=%.3f recognized=%s cache=%s ms=%.0f",
             message.chat.id, recognition_id, result.best.landmark_id if result.best else None,
             result.best.probability if result.best else 0.0, result.recognized, answer.from_cache,
             answer.latency_ms)
    best = result.best
    show_best = result.recognized and best is not None
    await message.answer(render_result(result, texts, from_cache=answer.from_cache),
                         reply_markup=answer_keyboard(texts, recognition_id, has_photos=show_best))
    if not show_best:
        return
    examples = await services.repos.photos_by_ids(result.example_photo_ids[: settings.example_photos])
    await send_gallery_photos(bot, services, message.chat.id, examples)
    if best.lat is not None and best.lon is not None:
        address = place_of(best) or landmark_name(best, texts.language)
        await message.answer_venue(latitude=best.lat, longitude=best.lon,
                                   title=landmark_name(best, texts.language), address=address)
