"""The evaluation again on random re-splits of the same photos: how much of a figure is the split's luck.

A dev set of a few dozen queries moves a bar by one photo: 1/46 is 0.022 of P@1 or of false
rejection. Before a method is kept because it won on the dev split, the same photos are dealt
again: each landmark keeps its number of gallery and query photos (a landmark with one
gallery photo still has one), and so do the distractors, but which photos play which role is
drawn at random. A method that only fits the one split shows it as a spread, or a mean no
better than the baseline's.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.evaluate import EvalReport, evaluate
from ml.index.embedding_cache import EmbeddingCache
from ml.indexer import IndexModels
from ml.metrics import (
    calibration_error_by_chance,
    expected_calibration_error,
    reliability_bins,
)
from ml.report import calibration_by_gallery_photos, top1_calibration
from storage.dataset_import import SplitPhoto, list_photos

# The figures a re-split summary reports: the bars of the recognition issue.
FIGURES = ("landmark_p_at_1", "landmark_p_at_5", "gap", "category_p_at_1", "distractor_rejection",
           "false_rejection", "unknown_landmark_rejection", "ece", "ece_by_chance")


def random_split(photos: list[SplitPhoto], seed: int) -> list[SplitPhoto]:
    """The same photos with their roles dealt again within each landmark (and within the distractors)."""
    rng = np.random.default_rng(seed)
    by_landmark: dict[str | None, list[SplitPhoto]] = defaultdict(list)
    for photo in photos:
        by_landmark[photo.landmark_id].append(photo)
    dealt: list[SplitPhoto] = []
    for group in by_landmark.values():
        roles = [group[i].role for i in rng.permutation(len(group))]
        dealt.extend(SplitPhoto(photo.image, photo.landmark_id, role) for photo, role in zip(group, roles))
    return dealt


@dataclass
class Spread:
    figure: str
    dataset_split: float
    mean: float
    sd: float
    low: float
    high: float
    values: list[float]  # one per re-split, in seed order: which splits fail two bars at once, say


def spreads(dataset_split: dict[str, float], resplits: list[dict[str, float]]) -> list[Spread]:
    """Per figure: its value on the dataset's own split, and mean, standard deviation, min and max over re-splits."""
    out = []
    for figure in FIGURES:
        values = [m[figure] for m in resplits if figure in m]
        if figure not in dataset_split or not values:
            continue
        out.append(Spread(figure, dataset_split[figure], statistics.fmean(values),
                          statistics.stdev(values) if len(values) > 1 else 0.0, min(values), max(values),
                          values))
    return out


@dataclass
class PooledCalibration:
    """The top-1 answers of several splits taken together. One split's few dozen answers give an ECE that
    is mostly the luck of a handful of answers per bin (`ece_by_chance`); pooled, a bin holds enough of them
    to tell a model that says 0.4 where it is right 9 times in 10 from one that was unlucky once."""

    answers: int
    ece: float
    ece_by_chance: float
    ece_by_chance_p95: float
    bins: list[dict]
    by_gallery_photos: list[dict]  # the same answers by how many gallery photos the named landmark has


def pooled_calibration(outcomes_per_split: list[list[dict]]) -> PooledCalibration:
    outcomes = [outcome for split in outcomes_per_split for outcome in split]
    confidence, correct = top1_calibration(outcomes)
    by_chance, by_chance_p95 = calibration_error_by_chance(confidence)
    return PooledCalibration(len(confidence), expected_calibration_error(confidence, correct), by_chance,
                             by_chance_p95, reliability_bins(confidence, correct),
                             calibration_by_gallery_photos(outcomes))


async def evaluate_resplits(folder: Path, count: int, progress: Callable[[str, int, int], None] | None = None,
                            first_seed: int = 1) -> list[EvalReport]:
    """The reports of `count` re-splits; one embedding cache serves them all, so each costs an index build
    and the queries, not the whole gallery embedded again."""
    photos = list_photos(folder, {"gallery", "query"})
    models = IndexModels.default()
    results = []
    with tempfile.TemporaryDirectory(prefix="landmarks-resplit-") as tmp:
        embeddings = EmbeddingCache(Path(tmp), models.signature)
        for number in range(count):
            if progress:
                progress("re-split", number, count)
            report = await evaluate(folder, models=models, split=random_split(photos, first_seed + number),
                                    embeddings=embeddings)
            results.append(report)
        if progress:
            progress("re-split", count, count)
    return results
