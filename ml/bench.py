"""Benchmarks that print figures (never timed tests): text search latency as the worker runs it."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from ml.text.search import LandmarkText, TextSearch
from storage.dataset_import import read_landmarks


def bench_text_search(folder: Path, repeats: int = 5) -> dict[str, float]:
    """p50/p95 of one search page (fuzzy + embedding + fusion) over the dataset's text queries."""
    landmarks = [LandmarkText.from_row(fields) for fields in read_landmarks(folder)]
    with open(folder / "text_queries.csv", encoding="utf-8") as handle:
        queries = [r["query"] for r in csv.DictReader(handle)]
    started = time.perf_counter()
    search = TextSearch(landmarks)
    build_ms = 1000 * (time.perf_counter() - started)
    search.page(queries[0], 5)  # warm-up: the encoder loads lazily
    timings = []
    for _ in range(repeats):
        for query in queries:
            t0 = time.perf_counter()
            search.page(query, 5)
            timings.append(1000 * (time.perf_counter() - t0))
    return {"landmarks": len(landmarks), "queries": len(timings), "build_ms": build_ms,
            "p50_ms": float(np.percentile(timings, 50)), "p95_ms": float(np.percentile(timings, 95)),
            "max_ms": float(np.max(timings))}
