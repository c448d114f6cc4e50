"""Each metric against an example worked out by hand."""

from __future__ import annotations

import pytest

from ml.metrics import (
    calibration_error_by_chance,
    expected_calibration_error,
    global_average_precision,
    map_at_k,
    precision_at_k,
    rejected_share,
    reliability_bins,
)


def test_precision_at_k() -> None:
    ranked = [["a", "b"], ["b", "a"], ["c", "d"]]
    truth = ["a", "a", "a"]
    assert precision_at_k(ranked, truth, 1) == pytest.approx(1 / 3)
    assert precision_at_k(ranked, truth, 2) == pytest.approx(2 / 3)


def test_map_at_5_is_one_over_rank() -> None:
    ranked = [["a", "x", "y"], ["x", "a", "y"], ["x", "y", "z", "w", "v", "a"]]
    # 1/1, 1/2, and 0 (found only at rank 6, outside the top 5)
    assert map_at_k(ranked, ["a", "a", "a"], 5) == pytest.approx((1 + 0.5 + 0) / 3)


def test_gap_by_hand() -> None:
    # sorted by confidence: q1 right (0.9), q4 distractor answered (0.8), q2 wrong (0.7), q3 right (0.6)
    predictions = ["a", "x", "c", "d"]
    confidences = [0.9, 0.7, 0.6, 0.8]
    truth = ["a", "b", "c", None]
    # precision at the correct ones: rank 1 -> 1/1, rank 4 -> 2/4; divided by 3 landmark queries
    assert global_average_precision(predictions, confidences, truth) == pytest.approx((1 + 0.5) / 3)


def test_gap_ignores_unanswered_queries_but_counts_them_as_missed() -> None:
    assert global_average_precision(["a", None], [0.9, 0.1], ["a", "b"]) == pytest.approx(0.5)
    assert global_average_precision(["a", "b"], [0.9, 0.1], ["a", "b"]) == pytest.approx(1.0)


def test_ece_by_hand() -> None:
    # bin (0.1, 0.2]: conf 0.15, 0.15 -> acc 0.5 -> |0.5-0.15| = 0.35, weight 0.5
    # bin (0.9, 1.0]: conf 0.95, 0.95 -> acc 1.0 -> |1.0-0.95| = 0.05, weight 0.5
    ece = expected_calibration_error([0.15, 0.15, 0.95, 0.95], [True, False, True, True])
    assert ece == pytest.approx(0.5 * 0.35 + 0.5 * 0.05)


def test_reliability_bins_by_hand() -> None:
    # 0.3 sits on an edge and falls in the bin it closes, (0.2, 0.3]; empty bins are left out.
    bins = reliability_bins([0.05, 0.15, 0.15, 0.3, 0.95], [False, True, False, True, True])
    assert [(row["low"], row["high"], row["answers"]) for row in bins] == [(0.0, 0.1, 1), (0.1, 0.2, 2), (0.2, 0.3, 1),
                                                                          (0.9, 1.0, 1)]
    assert [row["share_right"] for row in bins] == [0.0, 0.5, 1.0, 1.0]
    assert [row["mean_confidence"] for row in bins] == pytest.approx([0.05, 0.15, 0.3, 0.95])


def test_perfect_calibration_has_zero_ece() -> None:
    assert expected_calibration_error([1.0, 1.0, 0.0], [True, True, False]) == pytest.approx(0.0)


def test_ece_by_chance_by_hand() -> None:
    # Two answers at 0.5, both in bin (0.4, 0.5]: 0, 1 or 2 right with chances 1/4, 1/2, 1/4 give an ECE of
    # |0 - 0.5|, |0.5 - 0.5|, |1 - 0.5|: 0.25 on average, 0.5 at the 95th percentile.
    mean, high = calibration_error_by_chance([0.5, 0.5], draws=20000)
    assert mean == pytest.approx(0.25, abs=0.01)
    assert high == pytest.approx(0.5)
    # Certain answers leave nothing to chance.
    assert calibration_error_by_chance([1.0, 0.0, 1.0]) == (0.0, 0.0)
    # More answers at the same confidence average the luck out: 400 answers at 0.7 stay within a few hundredths.
    assert calibration_error_by_chance([0.7] * 400)[0] < 0.03


def test_rejected_share_counts_not_recognised_answers() -> None:
    assert rejected_share([False, True, True, False]) == pytest.approx(0.5)
    assert rejected_share([True]) == 0.0
    assert rejected_share([]) is None  # nothing to count is not "none rejected"
