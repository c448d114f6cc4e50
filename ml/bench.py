"""Benchmarks that print figures (never timed tests): text search latency, in the worker and through the queue."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import numpy as np

from ml.text.encoders import encoders_from_settings
from ml.text.search import LandmarkText, TextSearch
from storage.dataset_import import read_landmarks
from storage.schemas import Job
from storage.services import Services


def read_text_queries(folder: Path) -> list[str]:
    with open(folder / "text_queries.csv", encoding="utf-8") as handle:
        return [r["query"] for r in csv.DictReader(handle)]


def summarise(timings: list[float]) -> dict[str, float]:
    return {"queries": len(timings), "p50_ms": float(np.percentile(timings, 50)),
            "p95_ms": float(np.percentile(timings, 95)), "max_ms": float(np.max(timings))}


def bench_text_search(folder: Path, repeats: int = 5) -> dict[str, float]:
    """p50/p95 of one search page (fuzzy + both encoders + fusion) as the worker computes it."""
    landmarks = [LandmarkText.from_row(fields) for fields in read_landmarks(folder)]
    queries = read_text_queries(folder)
    started = time.perf_counter()
    search = TextSearch(landmarks, encoders_from_settings())
    build_ms = 1000 * (time.perf_counter() - started)
    for encoder in search.encoders:  # warm-up: the encoders load lazily
        encoder.encode(["warm-up"])
    timings = []
    for _ in range(repeats):
        for query in queries:
            t0 = time.perf_counter()
            search.page(query, 5)
            timings.append(1000 * (time.perf_counter() - t0))
    return {"landmarks": len(landmarks), "build_ms": build_ms, **summarise(timings)}


async def bench_search_round_trip(services: Services, queries: list[str], repeats: int = 5) -> dict[str, float]:
    """p50/p95 from submitting a search job to holding its answer: queue, worker, search, way back.

    Uses the configured queue: with REDIS_URL the running workers answer; on the embedded
    defaults a worker is started in this process on the active index."""
    worker_task = None
    if not services.settings.redis_url:
        from ml.worker import Worker

        worker = Worker(services)
        worker_task = asyncio.create_task(worker.run())
    try:
        await services.queue.submit(Job.search(queries[0], 5), timeout=600)  # warm-up: models and index load
        timings = []
        for _ in range(repeats):
            for query in queries:
                t0 = time.perf_counter()
                result = await services.queue.submit(Job.search(query, 5), timeout=30)
                timings.append(1000 * (time.perf_counter() - t0))
                if not result.ok:
                    raise RuntimeError(f"search failed: {result.error}")
        return summarise(timings)
    finally:
        if worker_task:
            worker.stop()
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
