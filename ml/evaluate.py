"""The evaluation protocol of `../shared/datasets/README.md`, on a private temporary store.

Index the dataset's gallery photos, send every query photo through the same Recognizer the
worker uses, and count. It never touches the live gallery: a fresh DATA_DIR and SQLite
file are made for the run and removed afterwards.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.indexer import build_index
from ml.models.image_embedder import ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher
from ml.recognize import Recognizer
from ml.index.bundle import IndexBundle
from storage.dataset_import import import_dataset
from storage.db import create_engine, create_session_factory
from storage.images import decode_image
from storage.migrate import upgrade_async
from storage.photo_store import PhotoStore
from storage.repositories import Repositories
from storage.settings import StorageSettings


@dataclass
class EvalReport:
    landmark_p_at_1: float
    landmark_p_at_5: float
    category_p_at_1: float
    distractor_rejection: float
    false_rejection: float
    n_landmark_queries: int
    n_distractor_queries: int
    latency_ms_p50: float
    latency_ms_p95: float
    index_seconds: float
    failures: list[dict] = field(default_factory=list)

    def metrics(self) -> dict:
        out = asdict(self)
        out.pop("failures")
        return out


def read_queries(folder: Path) -> list[tuple[str, str | None]]:
    with open(folder / "split.csv", encoding="utf-8") as handle:
        return [(r["image"], r["landmark_id"] or None) for r in csv.DictReader(handle) if r["role"] == "query"]


async def evaluate(folder: Path, progress: Callable[[str, int, int], None] | None = None) -> EvalReport:
    queries = read_queries(folder)
    with tempfile.TemporaryDirectory(prefix="landmarks-eval-") as tmp:
        settings = StorageSettings(data_dir=Path(tmp), database_url=None, redis_url=None)
        settings.ensure_dirs()
        await upgrade_async(database_url=settings.resolved_database_url)
        engine = create_engine(settings)
        try:
            repos = Repositories(create_session_factory(engine))
            store = PhotoStore(settings.photos_dir)
            await import_dataset(folder, repos, store,
                                 progress=(lambda d, t: progress("import", d, t)) if progress else None)
            embedder, matcher = ImageEmbedder(), LocalFeatureMatcher()
            started = time.perf_counter()
            bundle = await build_index(repos, store, embedder, matcher, settings.index_dir,
                                       progress=(lambda d, t: progress("index", d, t)) if progress else None)
            index_seconds = time.perf_counter() - started
            landmarks = await repos.get_landmarks()
        finally:
            await engine.dispose()
        recognizer = Recognizer(embedder, matcher, IndexBundle.load(settings.index_dir / bundle.version))
        return _score(folder, queries, recognizer, {k: v.category for k, v in landmarks.items()}, index_seconds,
                      progress)


def _score(folder: Path, queries: list[tuple[str, str | None]], recognizer: Recognizer,
           categories: dict[str, str], index_seconds: float,
           progress: Callable[[str, int, int], None] | None) -> EvalReport:
    p1 = p5 = cat1 = false_rej = distractor_rej = 0
    n_land = n_dist = 0
    latencies, failures = [], []
    for done, (relative, expected) in enumerate(queries, start=1):
        image = decode_image((folder / relative).read_bytes())
        started = time.perf_counter()
        result = recognizer.recognize(image)
        latencies.append(1000 * (time.perf_counter() - started))
        got = [lm.landmark_id for lm in result.landmarks]
        if expected is None:
            n_dist += 1
            distractor_rej += int(not result.recognized)
            if result.recognized:
                failures.append({"query": relative, "expected": None, "got": got[:1],
                                 "probability": result.landmarks[0].probability})
        else:
            n_land += 1
            hit = bool(got) and got[0] == expected
            p1 += int(hit)
            p5 += int(expected in got[:5])
            cat1 += int(bool(result.categories) and result.categories[0].category == categories.get(expected))
            false_rej += int(not result.recognized)
            if not hit or not result.recognized:
                failures.append({"query": relative, "expected": expected, "got": got[:3],
                                 "probabilities": [round(lm.probability, 3) for lm in result.landmarks[:3]],
                                 "inliers": [lm.inliers for lm in result.landmarks[:3]],
                                 "recognized": result.recognized})
        if progress:
            progress("query", done, len(queries))
    return EvalReport(
        landmark_p_at_1=p1 / max(1, n_land),
        landmark_p_at_5=p5 / max(1, n_land),
        category_p_at_1=cat1 / max(1, n_land),
        distractor_rejection=distractor_rej / max(1, n_dist),
        false_rejection=false_rej / max(1, n_land),
        n_landmark_queries=n_land,
        n_distractor_queries=n_dist,
        latency_ms_p50=float(np.percentile(latencies, 50)) if latencies else 0.0,
        latency_ms_p95=float(np.percentile(latencies, 95)) if latencies else 0.0,
        index_seconds=index_seconds,
        failures=failures,
    )
