"""Inline keyboards and their callback data (aiogram's CallbackData factories)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.locales import Texts


class FeedbackCallback(CallbackData, prefix="fb"):
    recognition_id: int
    correct: bool


class MorePhotosCallback(CallbackData, prefix="more"):
    recognition_id: int


def answer_keyboard(texts: Texts, recognition_id: int, has_photos: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts("btn_right"), callback_data=FeedbackCallback(recognition_id=recognition_id, correct=True))
    builder.button(text=texts("btn_wrong"), callback_data=FeedbackCallback(recognition_id=recognition_id, correct=False))
    if has_photos:
        builder.button(text=texts("btn_more"), callback_data=MorePhotosCallback(recognition_id=recognition_id))
    builder.adjust(2, 1)
    return builder.as_markup()
