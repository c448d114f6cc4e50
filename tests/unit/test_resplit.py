"""Re-splits deal the same photos again with each landmark's counts kept, so a figure's spread is the split's luck."""

from __future__ import annotations

from collections import Counter

import pytest

from ml.resplit import random_split, spreads
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
    assert (p1.dataset_split, p1.mean, p1.low, p1.high) == (0.9, 0.9, 0.8, 1.0)
    assert p1.sd == pytest.approx(0.1414, abs=1e-4)  # sample standard deviation of 0.8 and 1.0
    assert rows["ece"].sd == 0.0 and rows["ece"].mean == 0.1
