"""Recognition metrics, as pure functions so each one is tested against hand-computed examples.

GAP is the Google Landmark Recognition metric (micro average precision): every query gives
one prediction with a confidence; predictions are sorted by confidence over the whole set,
and precision is accumulated at each correct one, divided by the number of queries that
have a landmark. Distractor queries therefore only hurt when answered confidently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def precision_at_k(ranked: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    """Share of queries whose true label is among the first k predictions."""
    if not truth:
        return 0.0
    return float(np.mean([t in list(r)[:k] for r, t in zip(ranked, truth)]))


def map_at_k(ranked: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    """Mean average precision at k with one relevant label per query: 1/rank when found in the top k."""
    if not truth:
        return 0.0
    scores = []
    for predictions, label in zip(ranked, truth):
        predictions = list(predictions)[:k]
        scores.append(1.0 / (predictions.index(label) + 1) if label in predictions else 0.0)
    return float(np.mean(scores))


def global_average_precision(predictions: Sequence[str | None], confidences: Sequence[float],
                             truth: Sequence[str | None]) -> float:
    """GAP: `predictions[i]` is the answer to query i (None = no answer), `truth[i]` None for a distractor."""
    n_landmark_queries = sum(t is not None for t in truth)
    if n_landmark_queries == 0:
        return 0.0
    order = np.argsort(-np.asarray(confidences, dtype=np.float64), kind="stable")
    correct_so_far = 0
    total = 0.0
    rank = 0
    for i in order:
        if predictions[i] is None:
            continue
        rank += 1
        if truth[i] is not None and predictions[i] == truth[i]:
            correct_so_far += 1
            total += correct_so_far / rank
    return total / n_landmark_queries


def rejected_share(recognised: Sequence[bool]) -> float | None:
    """Share of queries answered "not recognised" (None when there is none to count): of distractor queries it is
    the share rightly rejected, of landmark queries the share wrongly rejected."""
    if not recognised:
        return None
    return float(np.mean([not r for r in recognised]))


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[dict]:
    """Per non-empty equal-width bin of the confidence (right edge inclusive): its answers, their mean
    confidence and the share of them right. The ECE sums over these; the reliability diagrams draw them."""
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in map(int, np.unique(index)):  # the non-empty bins, in order
        in_bin = index == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "answers": int(in_bin.sum()),
                     "mean_confidence": float(conf[in_bin].mean()), "share_right": float(hit[in_bin].mean())})
    return rows


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Σ over equal-width confidence bins of (share of samples) · |accuracy − mean confidence|."""
    total = len(confidences)
    return float(sum(row["answers"] / total * abs(row["share_right"] - row["mean_confidence"])
                     for row in reliability_bins(confidences, correct, bins)))


def calibration_error_by_chance(confidences: Sequence[float], bins: int = 10, draws: int = 4000,
                                seed: int = 0) -> tuple[float, float]:
    """(mean, 95th percentile) of the ECE a perfectly calibrated model would show on these confidences.

    Each draw makes every answer right with exactly its stated probability and measures the ECE of that
    outcome. On a few dozen queries the binned ECE is far from zero even then: each bin's accuracy is a
    share of a handful of answers. On the dev split (66 queries), the confidences the bot gives came to a
    mean of 0.057 (95th percentile 0.079), so an ECE is read against this figure, not against zero.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    if len(conf) == 0:
        return 0.0, 0.0
    outcomes = np.random.default_rng(seed).random((draws, len(conf))) < conf
    errors = [expected_calibration_error(conf, outcome, bins) for outcome in outcomes]
    return float(np.mean(errors)), float(np.percentile(errors, 95))
