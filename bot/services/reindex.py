"""/reindex from the bot's side: hand the job to a worker, then keep one message up to date.

The worker writes the reindex state to the shared cache every second; the bot reads it and
edits its progress message at most every `EDIT_INTERVAL_S` (well inside Telegram's limits on
edits), until the state is final or its heartbeat stops (the worker died: the old index
keeps serving and the admin is told to run it again).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter

from bot.locales import Texts
from bot.rendering import reindex_text
from storage.queue import QueueTimeout
from storage.reindex_state import GONE_AFTER_S, is_alive, read_state
from storage.schemas import Job
from storage.services import Services

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 3.0
POLL_INTERVAL_S = 0.5
START_TIMEOUT_S = 30.0

_followers: set[asyncio.Task] = set()  # strong references: a task nobody holds may be collected


class NoWorker(RuntimeError):
    pass


async def start(services: Services, full: bool, requested_by: int) -> tuple[str, bool]:
    """Submit a reindex; returns (job id to follow, whether it is one that was already running)."""
    job = Job.reindex(full, requested_by)
    try:
        result = await services.queue.submit(job, timeout=START_TIMEOUT_S)
    except QueueTimeout as exc:
        raise NoWorker from exc
    if result.ok:
        return job.id, False
    if result.error_code == "busy" and result.reindex is not None:
        return result.reindex.job_id, True
    raise NoWorker(result.error or "the worker refused the reindex")


def follow(bot: Bot, services: Services, chat_id: int, message_id: int, job_id: str, texts: Texts,
           previous_version: str | None) -> None:
    task = asyncio.create_task(_follow(bot, services, chat_id, message_id, job_id, texts, previous_version),
                               name=f"reindex-progress-{job_id}")
    _followers.add(task)
    task.add_done_callback(_followers.discard)


async def _follow(bot: Bot, services: Services, chat_id: int, message_id: int, job_id: str, texts: Texts,
                  previous_version: str | None) -> None:
    shown, edited_at, waiting_since = "", 0.0, time.monotonic()
    while True:
        state = await read_state(services.cache)
        if state is None or state.job_id != job_id:
            if time.monotonic() - waiting_since > GONE_AFTER_S:  # never started beating
                await _edit(bot, chat_id, message_id, texts("reindex_lost", version=previous_version or "—"))
                return
            await asyncio.sleep(POLL_INTERVAL_S)
            continue
        lost = not state.finished and not is_alive(state)
        text = texts("reindex_lost", version=state.previous_version or "—") if lost else reindex_text(state, texts)
        final = state.finished or lost
        if text != shown and (final or time.monotonic() - edited_at >= EDIT_INTERVAL_S):
            await _edit(bot, chat_id, message_id, text)
            shown, edited_at = text, time.monotonic()
        if final:
            log.info("reindex.reported job=%s status=%s", job_id, "lost" if lost else state.status)
            return
        await asyncio.sleep(POLL_INTERVAL_S)


async def _edit(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    for _ in range(3):
        try:
            await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)
            return
        except TelegramRetryAfter as exc:
            await asyncio.sleep(exc.retry_after)
        except TelegramBadRequest as exc:  # "message is not modified", or the admin deleted it
            log.info("reindex.edit_skipped error=%s", exc.message)
            return
