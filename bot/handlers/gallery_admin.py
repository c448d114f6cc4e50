"""Admins grow and trim the gallery: /add (a photo or an album with the caption "/add NAME"), a short
dialogue for a new landmark, /remove, and /review of users' corrections. Every change goes live at
once through a worker (a new index version from the serving one, no full rebuild)."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.handlers.photo import answer_photo
from bot.keyboards import (
    AddChoiceCallback,
    CategoryCallback,
    ReviewCallback,
    SkipCallback,
    categories_keyboard,
    choices_keyboard,
    review_keyboard,
    skip_keyboard,
)
from bot.locales import Texts
from bot.rendering import escape, landmark_name
from bot.services import gallery_admin
from bot.services.admins import IsAdmin
from bot.services.gallery_admin import GalleryChangeFailed, PendingAdd, exact_landmarks
from bot.settings import BotSettings
from storage.schemas import CATEGORIES, GalleryChange, Job
from storage.services import Services

log = logging.getLogger(__name__)
router = Router(name="gallery_admin")

ALBUM_QUIET_S = 1.0  # an album's photos arrive as separate messages within a moment of each other
_albums: dict[str, list[Message]] = {}


class NewLandmark(StatesGroup):
    category = State()
    city = State()
    country = State()
    location = State()


# -- /add ---------------------------------------------------------------------------------------
@router.message(F.media_group_id, F.photo, IsAdmin())
async def on_admin_album(message: Message, bot: Bot, services: Services, bot_settings: BotSettings, texts: Texts,
                         state: FSMContext) -> None:
    """The first photo of an album waits for the rest; an album captioned /add goes to the gallery,
    any other album is recognised photo by photo as for everyone."""
    group = _albums.setdefault(message.media_group_id, [])
    group.append(message)
    if len(group) > 1:
        return
    size = 0
    while size != len(group):
        size = len(group)
        await asyncio.sleep(ALBUM_QUIET_S)
    messages = sorted(_albums.pop(message.media_group_id), key=lambda m: m.message_id)
    caption = next((m.caption for m in messages if m.caption), "") or ""
    if caption.split(maxsplit=1)[0:1] == ["/add"]:
        await start_add(message, caption.split(maxsplit=1)[1] if " " in caption.strip() else "",
                        [m.photo[-1].file_id for m in messages], bot, services, bot_settings, texts, state)
        return
    for item in messages:
        photo = item.photo[-1]
        await answer_photo(item, bot, services, bot_settings, texts, photo.file_id, photo.file_unique_id,
                           photo.file_size)


@router.message(F.photo, Command("add"), IsAdmin())
async def on_add_photo(message: Message, command: CommandObject, bot: Bot, services: Services,
                       bot_settings: BotSettings, texts: Texts, state: FSMContext) -> None:
    await start_add(message, command.args or "", [message.photo[-1].file_id], bot, services, bot_settings, texts,
                    state)


@router.message(Command("add"), IsAdmin())
async def on_add_without_photo(message: Message, texts: Texts) -> None:
    await message.answer(texts("add_usage"))


async def start_add(message: Message, query: str, file_ids: list[str], bot: Bot, services: Services,
                    settings: BotSettings, texts: Texts, state: FSMContext) -> None:
    query = " ".join(query.split())[:200]
    if not query:
        await message.answer(texts("add_usage"))
        return
    async with ChatActionSender.typing(bot=bot, chat_id=message.chat.id):
        photo_ids, skipped = await gallery_admin.store_photos(bot, services, file_ids)
        for reason in skipped:
            await message.answer(texts("add_bad_photo", reason=escape(reason)))
        if not photo_ids:
            return
        pending = PendingAdd(photo_ids=photo_ids, query=query, admin_id=message.from_user.id)
        candidates, exact = await gallery_admin.find_landmarks(services, query, settings.job_timeout_s)
        if exact:
            await finish_add(message.chat.id, bot, services, texts, pending, candidates[0].id)
            return
        token = await pending.save(services)
    if candidates:
        choices = [(row.id, landmark_name(row, texts.language)) for row in candidates]
        await message.answer(texts("add_choose", query=escape(query)),
                             reply_markup=choices_keyboard(texts, token, choices, query))
        return
    await ask_new_landmark(message.chat.id, bot, texts, state, token, query)


@router.callback_query(AddChoiceCallback.filter(), IsAdmin())
async def on_add_choice(query: CallbackQuery, callback_data: AddChoiceCallback, bot: Bot, services: Services,
                        texts: Texts, state: FSMContext) -> None:
    pending = await PendingAdd.load(services, callback_data.token)
    await query.answer()
    if pending is None:
        await bot.send_message(query.from_user.id, texts("add_expired"))
        return
    if callback_data.landmark_id:
        await finish_add(query.from_user.id, bot, services, texts, pending, callback_data.landmark_id)
    else:
        await ask_new_landmark(query.from_user.id, bot, texts, state, callback_data.token, pending.query)


async def finish_add(chat_id: int, bot: Bot, services: Services, texts: Texts, pending: PendingAdd,
                     landmark_id: str) -> None:
    async with ChatActionSender.typing(bot=bot, chat_id=chat_id):
        landmark = (await services.repos.get_landmarks([landmark_id]))[landmark_id]
        try:
            change = await gallery_admin.add_to_landmark(services, pending.photo_ids, landmark_id)
        except GalleryChangeFailed as exc:
            await bot.send_message(chat_id, _failure_text(texts, exc))
            return
    log.info("admin.added user=%s landmark=%s photos=%s version=%s", pending.admin_id, landmark_id,
             pending.photo_ids, change.version)
    name = escape(landmark_name(landmark, texts.language))
    count = change.photo_counts.get(landmark_id, 0)
    await bot.send_message(chat_id, texts("add_done", added=change.added, name=name, count=count,
                                          ids=", ".join(map(str, pending.photo_ids)), version=escape(change.version)))


def _failure_text(texts: Texts, exc: GalleryChangeFailed) -> str:
    if exc.code == "busy":
        return texts("gallery_busy")
    return texts("gallery_failed", error=escape(exc.detail or exc.code))


# -- a new landmark: category, city, country, location -------------------------------------------
async def ask_new_landmark(chat_id: int, bot: Bot, texts: Texts, state: FSMContext, token: str, name: str) -> None:
    await state.set_state(NewLandmark.category)
    await state.update_data(token=token, name=name)
    await bot.send_message(chat_id, texts("add_new_category", name=escape(name)),
                           reply_markup=categories_keyboard(texts, CATEGORIES))


@router.callback_query(CategoryCallback.filter(), StateFilter(NewLandmark.category))
async def on_category(query: CallbackQuery, callback_data: CategoryCallback, state: FSMContext, texts: Texts) -> None:
    await query.answer()
    await state.update_data(category=callback_data.category)
    await state.set_state(NewLandmark.city)
    await query.message.answer(texts("add_new_city"))


@router.message(StateFilter(NewLandmark.city), F.text)
async def on_city(message: Message, state: FSMContext, texts: Texts) -> None:
    await state.update_data(city=message.text.strip()[:128])
    await state.set_state(NewLandmark.country)
    await message.answer(texts("add_new_country"))


@router.message(StateFilter(NewLandmark.country), F.text)
async def on_country(message: Message, state: FSMContext, texts: Texts) -> None:
    await state.update_data(country=message.text.strip()[:128])
    await state.set_state(NewLandmark.location)
    await message.answer(texts("add_new_location"), reply_markup=skip_keyboard(texts, "location"))


@router.message(StateFilter(NewLandmark.location), F.location)
async def on_location(message: Message, bot: Bot, state: FSMContext, services: Services, texts: Texts) -> None:
    await create_and_add(message.chat.id, bot, state, services, texts, message.location.latitude,
                         message.location.longitude)


@router.callback_query(SkipCallback.filter(F.step == "location"), StateFilter(NewLandmark.location))
async def on_skip_location(query: CallbackQuery, bot: Bot, state: FSMContext, services: Services,
                           texts: Texts) -> None:
    await query.answer()
    await create_and_add(query.from_user.id, bot, state, services, texts, None, None)


async def create_and_add(chat_id: int, bot: Bot, state: FSMContext, services: Services, texts: Texts,
                         lat: float | None, lon: float | None) -> None:
    data = await state.get_data()
    await state.clear()
    pending = await PendingAdd.load(services, data["token"])
    if pending is None:
        await bot.send_message(chat_id, texts("add_expired"))
        return
    landmark_id = await gallery_admin.create_landmark(services, data["name"], data.get("category", "other"),
                                                      data.get("city"), data.get("country"), lat, lon)
    await finish_add(chat_id, bot, services, texts, pending, landmark_id)


# -- /remove --------------------------------------------------------------------------------------
@router.message(Command("remove"), IsAdmin())
async def on_remove(message: Message, command: CommandObject, services: Services, texts: Texts) -> None:
    words = (command.args or "").split()
    if not words:
        await message.answer(texts("remove_usage"))
        return
    if words[0].lower() == "photo" and len(words) == 2 and words[1].isdigit():
        await remove_photo(message, services, texts, int(words[1]))
        return
    query = " ".join(words)
    matches = exact_landmarks(await services.repos.get_landmarks(), query)  # never a fuzzy match: removal is final
    if not matches:
        await message.answer(texts("remove_not_found", query=escape(query)))
        return
    if len(matches) > 1:
        await message.answer(texts("remove_ambiguous", query=escape(query),
                                   ids=", ".join(f"<code>{escape(row.id)}</code>" for row in matches)))
        return
    landmark = matches[0]
    photo_ids = await services.repos.gallery_photo_ids(landmark.id)
    change = await _apply_removal(message, services, texts, photo_ids,
                                  Job.gallery(remove_landmark_ids=[landmark.id]))
    if change:
        await message.answer(texts("remove_done_landmark", name=escape(landmark_name(landmark, texts.language)),
                                   count=len(photo_ids), version=escape(change.version)))


async def remove_photo(message: Message, services: Services, texts: Texts, photo_id: int) -> None:
    photos = await services.repos.photos_by_ids([photo_id])
    if not photos or photos[0].role != "gallery":
        await message.answer(texts("remove_not_found", query=photo_id))
        return
    change = await _apply_removal(message, services, texts, [photo_id], Job.gallery(remove_photo_ids=[photo_id]))
    if change:
        landmark = (await services.repos.get_landmarks([photos[0].landmark_id]))[photos[0].landmark_id]
        await message.answer(texts("remove_done_photo", photo_id=photo_id,
                                   name=escape(landmark_name(landmark, texts.language)),
                                   count=change.photo_counts.get(landmark.id, 0), version=escape(change.version)))


async def _apply_removal(message: Message, services: Services, texts: Texts, photo_ids: list[int],
                         job: Job) -> GalleryChange | None:
    try:
        change = await gallery_admin.apply(services, job)
    except GalleryChangeFailed as exc:
        await message.answer(_failure_text(texts, exc))
        return None
    await services.repos.set_photo_role(photo_ids, "removed")  # after the index dropped them: a reindex won't bring them back
    log.info("admin.removed user=%s photos=%s version=%s", message.from_user.id, photo_ids, change.version)
    return change


# -- /review --------------------------------------------------------------------------------------
@router.message(Command("review"), IsAdmin())
async def on_review(message: Message, bot: Bot, services: Services, texts: Texts) -> None:
    await show_next_correction(message.chat.id, bot, services, texts)


async def show_next_correction(chat_id: int, bot: Bot, services: Services, texts: Texts) -> None:
    pending = await services.repos.corrections_to_review()
    if not pending:
        await bot.send_message(chat_id, texts("review_empty"))
        return
    feedback, recognition = pending[0]
    landmarks = await services.repos.get_landmarks([feedback.correct_landmark_id, recognition.top_landmark_id or ""])
    said = landmarks.get(recognition.top_landmark_id or "")
    says = landmarks[feedback.correct_landmark_id]
    caption = texts("review_item", position=f"1/{len(pending)}", user=feedback.user_id,
                    said=escape(landmark_name(said, texts.language)) if said else "—",
                    says=escape(landmark_name(says, texts.language)))
    await bot.send_photo(chat_id, recognition.telegram_file_id, caption=caption,
                         reply_markup=review_keyboard(texts, feedback.id))


@router.callback_query(ReviewCallback.filter(), IsAdmin())
async def on_review_decision(query: CallbackQuery, callback_data: ReviewCallback, bot: Bot, services: Services,
                             texts: Texts) -> None:
    await query.answer()
    chat_id = query.from_user.id
    feedback, recognition = await services.repos.correction(callback_data.feedback_id)
    if feedback is None or feedback.status != "new":
        await show_next_correction(chat_id, bot, services, texts)
        return
    if not callback_data.accept:
        await services.repos.set_feedback_status(feedback.id, "rejected")
        await bot.send_message(chat_id, texts("review_rejected"))
    else:
        try:
            photo_ids, _ = await gallery_admin.store_photos(bot, services, [recognition.telegram_file_id])
        except Exception:  # the file is gone from Telegram: nothing to add
            log.exception("review.photo_unavailable feedback=%s", feedback.id)
            photo_ids = []
        if not photo_ids:
            await services.repos.set_feedback_status(feedback.id, "rejected")
            await bot.send_message(chat_id, texts("review_photo_gone"))
        else:
            try:
                change = await gallery_admin.add_to_landmark(services, photo_ids, feedback.correct_landmark_id)
            except GalleryChangeFailed as exc:
                await bot.send_message(chat_id, _failure_text(texts, exc))
                return
            await services.repos.set_feedback_status(feedback.id, "accepted")
            landmark = (await services.repos.get_landmarks([feedback.correct_landmark_id]))[feedback.correct_landmark_id]
            log.info("review.accepted feedback=%s landmark=%s version=%s", feedback.id, landmark.id, change.version)
            await bot.send_message(chat_id, texts("review_accepted", name=escape(landmark_name(landmark, texts.language)),
                                                  count=change.photo_counts.get(landmark.id, 0),
                                                  version=escape(change.version)))
    await show_next_correction(chat_id, bot, services, texts)
