"""The kind of an unknown place: ImageNet evidence grouped onto the bot's categories and the category head, each
weighed on the gallery."""

from __future__ import annotations

import numpy as np

from ml.models.heads import train_linear_head
from ml.models.place_categories import (
    IMAGENET_PLACES,
    PlaceWeights,
    fit_place_weights,
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


def _gallery(rng: np.random.Generator, informative_imagenet: bool, kinds_look_alike: bool = False,
             ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Ten landmarks, two kinds; each landmark has its own random direction, and with `kinds_look_alike` the
    landmarks of a kind also share one (churches look like churches)."""
    kind_direction = {"church": rng.normal(0, 1, 32), "bridge": rng.normal(0, 1, 32)}
    vectors, logits, landmarks, categories = [], [], [], []
    for i in range(10):
        category = "church" if i % 2 else "bridge"
        direction = rng.normal(0, 1, 32) + (3.0 * kind_direction[category] if kinds_look_alike else 0.0)
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


def test_weights_are_fitted_on_left_out_landmarks() -> None:
    rng = np.random.default_rng(1)
    vectors, logits, landmarks, categories = _gallery(rng, informative_imagenet=True)
    weights = fit_place_weights(vectors, logits, landmarks, categories)
    # Each landmark looks like no other, so a head that never saw one has nothing to say about its kind.
    assert weights.imagenet > 0.5 and weights.head < weights.imagenet / 3
    # a church the head never saw: its own direction, ImageNet says church
    head = train_linear_head(vectors, categories)
    unseen = rng.normal(0, 1, 32).astype(np.float32)
    p = place_category_proba(head, weights, unseen / np.linalg.norm(unseen), _logits_for(497, rng))
    assert CATEGORIES[int(np.argmax(p))] == "church" and abs(p.sum() - 1) < 1e-6


def test_the_head_counts_where_a_kind_has_a_look_of_its_own() -> None:
    rng = np.random.default_rng(3)
    weights = fit_place_weights(*_gallery(rng, informative_imagenet=False, kinds_look_alike=True))
    assert weights.head > 0.5 and weights.imagenet < weights.head / 3


def test_uninformative_imagenet_gets_little_weight() -> None:
    rng = np.random.default_rng(2)
    informative = fit_place_weights(*_gallery(rng, informative_imagenet=True))
    noise = fit_place_weights(*_gallery(rng, informative_imagenet=False))
    assert noise.imagenet < informative.imagenet / 3


def test_a_gallery_too_small_to_leave_landmarks_out_keeps_the_head_alone() -> None:
    vectors, logits, landmarks, categories = _gallery(np.random.default_rng(4), informative_imagenet=True)
    assert fit_place_weights(vectors[:6], logits[:6], landmarks[:6], categories[:6]) == PlaceWeights(1.0, 0.0)


def test_an_index_built_before_the_head_was_weighed_keeps_its_full_head() -> None:
    from ml.index.bundle import _place_weights

    assert _place_weights({"imagenet_weight": 0.7}) == PlaceWeights(head=1.0, imagenet=0.7)
    assert _place_weights({"place_weights": {"head": 0.0, "imagenet": 2.1}}) == PlaceWeights(head=0.0, imagenet=2.1)
