"""The buttons under an answer: 👍 / 👎 stored with the recognition, and more photos.

After 👎 the user may say which landmark it really is (one of the top 5, or typed); the
correction waits for an admin's /review."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.keyboards import (
    CorrectionCallback,
    FeedbackCallback,
    MorePhotosCallback,
    correction_keyboard,
)
from bot.locales import Texts
from bot.rendering import escape, landmark_name
from bot.services.gallery_admin import find_landmarks
from bot.services.gallery_media import answer_button_with_photos, callback_chat_id
from bot.settings import BotSettings
from storage.schemas import RecognitionResult
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
    if not callback_data.correct:
        candidates = RecognitionResult.model_validate(recognition.result).landmarks[:5]
        choices = [(lm.landmark_id, landmark_name(lm, texts.language)) for lm in candidates]
        await query.bot.send_message(callback_chat_id(query), texts("correction_ask"),
                                     reply_markup=correction_keyboard(texts, recognition.id, choices))


class Correction(StatesGroup):
    name = State()


@router.callback_query(CorrectionCallback.filter())
async def on_correction(query: CallbackQuery, callback_data: CorrectionCallback, services: Services,
                        texts: Texts, state: FSMContext) -> None:
    await query.answer()
    if not callback_data.landmark_id:
        await state.set_state(Correction.name)
        await state.update_data(recognition_id=callback_data.recognition_id)
        await query.bot.send_message(callback_chat_id(query), texts("correction_type"))
        return
    await _store_correction(query.bot, callback_chat_id(query), query.from_user.id, callback_data.recognition_id,
                            callback_data.landmark_id, services, texts)


@router.message(StateFilter(Correction.name), F.text & ~F.text.startswith("/"))
async def on_correction_typed(message: Message, services: Services, bot_settings: BotSettings, texts: Texts,
                              state: FSMContext) -> None:
    data = await state.get_data()
    await state.clear()
    query = message.text.strip()[:200]
    found, _ = await find_landmarks(services, query, bot_settings.job_timeout_s)  # the user's best guess: top match
    if not found:
        await message.answer(texts("correction_not_found", query=escape(query)))
        return
    await _store_correction(message.bot, message.chat.id, message.from_user.id, data["recognition_id"], found[0].id,
                            services, texts)


async def _store_correction(bot: Bot, chat_id: int, user_id: int, recognition_id: int, landmark_id: str,
                            services: Services, texts: Texts) -> None:
    landmarks = await services.repos.get_landmarks([landmark_id])
    if landmark_id not in landmarks or await services.repos.get_recognition(recognition_id) is None:
        await bot.send_message(chat_id, texts("feedback_gone"))
        return
    await services.repos.set_correction(recognition_id, user_id, landmark_id)
    log.info("feedback.correction recognition=%d user=%s landmark=%s", recognition_id, user_id, landmark_id)
    await bot.send_message(chat_id, texts("correction_thanks",
                                          name=escape(landmark_name(landmarks[landmark_id], texts.language))))


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
