"""Admin commands: /reindex [full|cancel], /stats, /admin add ID.

Anyone else who sends one of them is told it is for administrators, and the attempt is logged;
nothing else happens.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.locales import Texts
from bot.rendering import reindex_text, stats_text
from bot.services import reindex
from bot.services.admins import ADMIN_COMMANDS, IsAdmin, show_admin_commands
from storage.cache import WORKER_KEY_PREFIX
from storage.reindex_state import is_alive, read_state, request_cancel
from storage.services import Services

log = logging.getLogger(__name__)
router = Router(name="admin")


@router.message(Command("reindex"), IsAdmin())
async def on_reindex(message: Message, command: CommandObject, bot: Bot, services: Services, texts: Texts) -> None:
    argument = (command.args or "").strip().lower()
    if argument not in ("", "full", "cancel"):
        await message.answer(texts("reindex_usage"))
        return
    if argument == "cancel":
        cancelled = await request_cancel(services.cache)
        await message.answer(texts("reindex_cancel_sent" if cancelled else "reindex_none_running"))
        return
    running = await read_state(services.cache)
    if is_alive(running):
        job_id, already = running.job_id, True
    else:
        try:
            job_id, already = await reindex.start(services, argument == "full", message.from_user.id)
        except reindex.NoWorker:
            await message.answer(texts("reindex_no_worker"))
            return
    if already:
        await message.answer(texts("reindex_already"))
    log.info("admin.reindex user=%s full=%s job=%s already=%s", message.from_user.id, argument == "full", job_id,
             already)
    active = await services.repos.active_index()
    state = await read_state(services.cache)
    first = reindex_text(state, texts) if state and state.job_id == job_id else texts(
        "reindex_running", full="", stage=texts("reindex_stage_start"), progress="",
        version=active.version if active else "—")
    progress = await message.answer(first)
    reindex.follow(bot, services, message.chat.id, progress.message_id, job_id, texts,
                   active.version if active else None)


@router.message(Command("stats"), IsAdmin())
async def on_stats(message: Message, services: Services, texts: Texts) -> None:
    stats = await services.repos.usage_stats()
    index = await services.repos.active_index()
    workers = len(await services.cache.keys(WORKER_KEY_PREFIX))
    await message.answer(stats_text(stats, texts, index, await services.queue.length(), workers,
                                    await read_state(services.cache)))


@router.message(Command("admin"), IsAdmin())
async def on_admin(message: Message, command: CommandObject, bot: Bot, services: Services, texts: Texts) -> None:
    parts = (command.args or "").split()
    if len(parts) != 2 or parts[0].lower() != "add" or not parts[1].lstrip("-").isdigit():
        await message.answer(texts("admin_usage"))
        return
    user_id = int(parts[1])
    added = await services.repos.add_admin(user_id, message.from_user.id)
    log.info("admin.promoted user=%s by=%s new=%s", user_id, message.from_user.id, added)
    if added:
        await show_admin_commands(bot, {user_id})
    await message.answer(texts("admin_added" if added else "admin_exists", user_id=user_id))


@router.message(Command(*ADMIN_COMMANDS))
async def on_admin_command_refused(message: Message, texts: Texts) -> None:
    log.warning("admin.refused user=%s command=%s", message.from_user.id if message.from_user else None,
                (message.text or "").split()[0][:32])
    await message.answer(texts("admin_only"))
