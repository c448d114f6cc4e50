"""The kind of an unknown place: ImageNet evidence grouped onto the bot's categories, weighed on the gallery."""

from __future__ import annotations

import numpy as np

from ml.models.heads import train_linear_head
from ml.models.place_categories import (
    IMAGENET_PLACES,
    fit_imagenet_weight,
    imagenet_evidence,
    place_category_proba,
)
from storage.schemas import CATEGORIES


def _logits_for(imagenet_class: int, rng: np.random.Generator, strength: float = 6.0) -> np.ndarray:
    logits = rng.normal(0, 1, 1000)
    logits[imagenet_class] += strength
    return logits


def test_imagenet_classes_point_to_their_category() -> None:
    rng = np.random.default_rng(0)
    for imagenet_class, category in [(497, "church"), (698, "palace"), (873, "monument"), (839, "bridge")]:
        evidence = imagenet_evidence(_logits_for(imagenet_class, rng))
        assert CATEGORIES[int(np.argmax(evidence))] == category
    assert all(c in CATEGORIES for c in IMAGENET_PLACES)


def _gallery(rng: np.random.Generator, informative_imagenet: bool) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Ten landmarks, two kinds; each landmark looks like nothing else (its own random direction)."""
    vectors, logits, landmarks, categories = [], [], [], []
    for i in range(10):
        category = "church" if i % 2 else "bridge"
        direction = rng.normal(0, 1, 32)
        for _ in range(3):
            v = direction + rng.normal(0, 0.3, 32)
            vectors.append(v / np.linalg.norm(v))
            if informative_imagenet:
                cls = 497 if category == "church" else 839
            else:  # confident about some kind of place, unrelated to the real one
                cls = int(rng.choice([497, 839, 698, 873]))
            logits.append(_logits_for(cls, rng))
            landmarks.append(f"lm{i}")
            categories.append(category)
    return np.array(vectors, np.float32), np.array(logits, np.float32), landmarks, categories


def test_imagenet_weight_is_fitted_on_left_out_landmarks() -> None:
    rng = np.random.default_rng(1)
    vectors, logits, landmarks, categories = _gallery(rng, informative_imagenet=True)
    imagenet_weight = fit_imagenet_weight(vectors, logits, landmarks, categories)
    assert imagenet_weight > 0.5
    # a church the head never saw: its own direction, ImageNet says church
    head = train_linear_head(vectors, categories)
    unseen = rng.normal(0, 1, 32).astype(np.float32)
    p = place_category_proba(head, imagenet_weight, unseen / np.linalg.norm(unseen),
                             _logits_for(497, rng))
    assert CATEGORIES[int(np.argmax(p))] == "church" and abs(p.sum() - 1) < 1e-6


def test_uninformative_imagenet_gets_little_weight() -> None:
    rng = np.random.default_rng(2)
    informative = fit_imagenet_weight(*_gallery(rng, informative_imagenet=True))
    noise = fit_imagenet_weight(*_gallery(rng, informative_imagenet=False))
    assert noise < informative / 3
