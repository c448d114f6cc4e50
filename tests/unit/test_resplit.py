"""Re-splits deal the same photos again with each landmark's counts kept, so a figure's spread is the split's luck."""

from __future__ import annotations

from collections import Counter

import pytest

from ml.resplit import pooled_calibration, random_split, spreads
from storage.dataset_import import SplitPhoto

PHOTOS = [
    *(SplitPhoto(f"images/big/{i}.jpg", "big", "gallery" if i < 6 else "query") for i in range(8)),
    SplitPhoto("images/single/0.jpg", "single", "gallery"),
    SplitPhoto("images/single/1.jpg", "single", "query"),
    *(SplitPhoto(f"images/_distractor/{i}.jpg", None, "gallery" if i % 2 else "query") for i in range(6)),
]


def _roles(photos: list[SplitPhoto]) -> Counter[tuple[str | None, str]]:
    return Counter((p.landmark_id, p.role) for p in photos)


def test_each_landmark_keeps_its_gallery_and_query_counts_and_every_photo_its_landmark() -> None:
    for seed in range(5):
        dealt = random_split(PHOTOS, seed)
        assert _roles(dealt) == _roles(PHOTOS)
        assert sorted((p.image, p.landmark_id) for p in dealt) == sorted((p.image, p.landmark_id) for p in PHOTOS)


def test_seeds_deal_differently_and_the_same_seed_deals_the_same() -> None:
    assert random_split(PHOTOS, 3) == random_split(PHOTOS, 3)
    deals = {tuple(sorted(p.image for p in random_split(PHOTOS, seed) if p.role == "query")) for seed in range(6)}
    assert len(deals) > 1


def test_spreads_summarise_each_figure_over_the_resplits() -> None:
    rows = {row.figure: row for row in spreads({"landmark_p_at_1": 0.9, "ece": 0.05},
                                               [{"landmark_p_at_1": 0.8, "ece": 0.1}, {"landmark_p_at_1": 1.0}])}
    assert set(rows) == {"landmark_p_at_1", "ece"}  # figures missing from the run are left out
    p1 = rows["landmark_p_at_1"]
    assert (p1.dataset_split, p1.mean, p1.low, p1.high, p1.values) == (0.9, 0.9, 0.8, 1.0, [0.8, 1.0])
    assert p1.sd == pytest.approx(0.1414, abs=1e-4)  # sample standard deviation of 0.8 and 1.0
    assert rows["ece"].sd == 0.0 and rows["ece"].mean == 0.1


def _answer(probability: float, right: bool) -> dict:
    return {"top_probability": probability, "expected": "a", "got": ["a" if right else "b"]}


def test_pooled_calibration_lets_two_splits_luck_cancel() -> None:
    # One split answered right at 0.6, the other wrong at 0.6: ECEs of 0.4 and 0.6 apart, but pooled, two
    # answers at 0.6 of which one is right: |0.5 - 0.6| = 0.1.
    pooled = pooled_calibration([[_answer(0.6, True)], [_answer(0.6, False)]])
    assert pooled.answers == 2
    assert pooled.ece == pytest.approx(0.1)
    assert [(row["answers"], row["share_right"]) for row in pooled.bins] == [(2, 0.5)]
    assert 0.0 < pooled.ece_by_chance <= pooled.ece_by_chance_p95
    # A distractor's answer is never right, whatever its top-1 says.
    distractor = {"top_probability": 0.9, "expected": None, "got": ["a"]}
    assert pooled_calibration([[distractor]]).ece == pytest.approx(0.9)
