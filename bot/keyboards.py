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


class SearchPageCallback(CallbackData, prefix="sp"):
    token: str  # the query is kept in the cache under this token: callback data holds 64 bytes at most
    offset: int


class LandmarkPhotosCallback(CallbackData, prefix="lp"):
    landmark_id: str


def search_keyboard(texts: Texts, token: str, offset: int, page_size: int, total: int,
                    landmarks: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One "photos of" button per landmark on the page, then back / more."""
    builder = InlineKeyboardBuilder()
    for landmark_id, name in landmarks:
        builder.button(text=texts("btn_photos_of", name=name[:40]),
                       callback_data=LandmarkPhotosCallback(landmark_id=landmark_id))
    paging = 0
    if offset > 0:
        builder.button(text=texts("btn_prev"),
                       callback_data=SearchPageCallback(token=token, offset=max(0, offset - page_size)))
        paging += 1
    if offset + page_size < total:
        builder.button(text=texts("btn_next"), callback_data=SearchPageCallback(token=token, offset=offset + page_size))
        paging += 1
    builder.adjust(*([1] * len(landmarks)), *([paging] if paging else []))
    return builder.as_markup()


class AddChoiceCallback(CallbackData, prefix="add"):
    token: str  # the stored photos waiting for a landmark (see bot.services.gallery_admin.PendingAdd)
    landmark_id: str  # "" starts a new landmark


class CategoryCallback(CallbackData, prefix="cat"):
    category: str


class SkipCallback(CallbackData, prefix="skip"):
    step: str


class CorrectionCallback(CallbackData, prefix="fix"):
    recognition_id: int
    landmark_id: str  # "" asks the user to type the name


class ReviewCallback(CallbackData, prefix="rv"):
    feedback_id: int
    accept: bool


def choices_keyboard(texts: Texts, token: str, choices: list[tuple[str, str]], new_name: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for landmark_id, name in choices:
        builder.button(text=name[:60], callback_data=AddChoiceCallback(token=token, landmark_id=landmark_id))
    builder.button(text=texts("btn_new_landmark", name=new_name[:40]), callback_data=AddChoiceCallback(token=token,
                                                                                                        landmark_id=""))
    builder.adjust(1)
    return builder.as_markup()


def categories_keyboard(texts: Texts, categories: tuple[str, ...]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for category in categories:
        builder.button(text=texts(f"cat_{category}"), callback_data=CategoryCallback(category=category))
    builder.adjust(3)
    return builder.as_markup()


def skip_keyboard(texts: Texts, step: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts("btn_skip"), callback_data=SkipCallback(step=step))
    return builder.as_markup()


def correction_keyboard(texts: Texts, recognition_id: int, choices: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for landmark_id, name in choices:
        builder.button(text=name[:60], callback_data=CorrectionCallback(recognition_id=recognition_id,
                                                                        landmark_id=landmark_id))
    builder.button(text=texts("btn_none_of_these"), callback_data=CorrectionCallback(recognition_id=recognition_id,
                                                                                     landmark_id=""))
    builder.adjust(1)
    return builder.as_markup()


def review_keyboard(texts: Texts, feedback_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts("btn_accept"), callback_data=ReviewCallback(feedback_id=feedback_id, accept=True))
    builder.button(text=texts("btn_reject"), callback_data=ReviewCallback(feedback_id=feedback_id, accept=False))
    builder.adjust(2)
    return builder.as_markup()
