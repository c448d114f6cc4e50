"""The bot's side of text search: a job for the worker, then names and photos from the database."""

from __future__ import annotations

import uuid

from bot.services.recognition import RecognitionFailed
from storage.queue import QueueTimeout
from storage.schemas import Job, SearchResult
from storage.services import Services

QUERY_TTL_S = 24 * 3600
MAX_QUERY_CHARS = 256  # longer texts are cut: no landmark name is that long


async def search(services: Services, query: str, limit: int, offset: int, timeout: float) -> SearchResult:
    try:
        reply = await services.queue.submit(Job.search(query[:MAX_QUERY_CHARS], limit, offset), timeout=timeout)
    except QueueTimeout:
        raise RecognitionFailed("busy") from None
    if not reply.ok or reply.search is None:
        raise RecognitionFailed("internal_error")
    return reply.search


async def remember_query(services: Services, query: str) -> str:
    """A short token for the paging buttons; the query itself stays in the cache."""
    token = uuid.uuid4().hex[:12]
    await services.cache.set(f"search:{token}", query[:MAX_QUERY_CHARS], QUERY_TTL_S)
    return token


async def recall_query(services: Services, token: str) -> str | None:
    return await services.cache.get(f"search:{token}")
