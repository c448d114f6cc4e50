"""The bot's side of recognition: cache first, then a job for the worker.

No models here: the bot hashes the bytes, looks the answer up by (index version, hash),
and only on a miss puts a job on the queue and waits for the worker's result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from storage.cache import file_key, result_key
from storage.images import decode_image, sha256_of
from storage.queue import QueueTimeout
from storage.schemas import Job, RecognitionResult
from storage.services import Services

log = logging.getLogger(__name__)


class RecognitionFailed(Exception):
    """`code` is a text key the handler shows: no_index, busy, internal_error, corrupt_image, ..."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Answer:
    result: RecognitionResult
    sha256: str
    from_cache: bool
    latency_ms: float


async def cached_by_file(services: Services, file_unique_id: str) -> Answer | None:
    """A photo Telegram already showed us (same file_unique_id) is answered without a download."""
    started = time.perf_counter()
    version = await services.active_version()
    sha256 = await services.cache.get(file_key(file_unique_id))
    if version is None or sha256 is None:
        return None
    raw = await services.cache.get(result_key(version, sha256))
    if raw is None:
        return None
    return Answer(RecognitionResult.model_validate_json(raw), sha256, True, 1000 * (time.perf_counter() - started))


async def recognize_bytes(services: Services, data: bytes, file_unique_id: str | None, timeout: float) -> Answer:
    started = time.perf_counter()
    # Decoding here rejects bad files at once, in the user's language, before a worker is bothered.
    await asyncio.to_thread(decode_image, data)
    sha256 = sha256_of(data)
    ttl = services.settings.cache_ttl_s
    if file_unique_id:
        await services.cache.set(file_key(file_unique_id), sha256, ttl)
    version = await services.active_version()
    if version is not None:
        raw = await services.cache.get(result_key(version, sha256))
        if raw is not None:
            return Answer(RecognitionResult.model_validate_json(raw), sha256, True,
                          1000 * (time.perf_counter() - started))
    try:
        reply = await services.queue.submit(Job.recognize(data, sha256), timeout=timeout)
    except QueueTimeout:
        log.warning("recognition.timeout sha256=%s timeout_s=%.0f", sha256[:12], timeout)
        raise RecognitionFailed("busy") from None
    if not reply.ok or reply.result is None:
        log.warning("recognition.failed code=%s error=%s", reply.error_code, reply.error)
        code = {"no_index": "no_index", "bad_image": "corrupt_image"}.get(reply.error_code or "", "internal_error")
        raise RecognitionFailed(code)
    return Answer(reply.result, sha256, False, 1000 * (time.perf_counter() - started))
