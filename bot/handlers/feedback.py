"""The buttons under an answer: 👍 / 👎 stored with the recognition, and more photos."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import CallbackQuery

from bot.keyboards import FeedbackCallback, MorePhotosCallback
from bot.locales import Texts
from bot.services.gallery_media import answer_button_with_photos
from bot.settings import BotSettings
from storage.services import Services

log = logging.getLogger(__name__)
router = Router(name="feedback")


@router.callback_query(FeedbackCallback.filter())
async def on_feedback(query: CallbackQuery, callback_data: FeedbackCallback, services: Services,
                      texts: Texts) -> None:
    recognition = await services.repos.get_recognition(callback_data.recognition_id)
    if recognition is None:
        await query.answer(texts("feedback_gone"))
        return
    await services.repos.add_feedback(recognition.id, query.from_user.id, callback_data.correct)
    log.info("feedback.stored recognition=%d user=%s correct=%s", recognition.id, query.from_user.id,
             callback_data.correct)
    await query.answer(texts("feedback_thanks_right" if callback_data.correct else "feedback_thanks_wrong"))


@router.callback_query(MorePhotosCallback.filter())
async def on_more_photos(query: CallbackQuery, callback_data: MorePhotosCallback, bot: Bot, services: Services,
                         bot_settings: BotSettings, texts: Texts) -> None:
    recognition = await services.repos.get_recognition(callback_data.recognition_id)
    if recognition is None or not recognition.top_landmark_id:
        await query.answer(texts("feedback_gone"))
        return
    shown = recognition.result.get("example_photo_ids", [])[: bot_settings.example_photos]
    photos = await services.repos.example_photos(recognition.top_landmark_id, bot_settings.more_photos, exclude=shown)
    await answer_button_with_photos(query, bot, services, photos, texts)
