"""PCA whitening learned on the gallery: what it keeps, and when it declines."""

from __future__ import annotations

import numpy as np

from ml.index.whitening import learn_whitening


def test_whitening_discounts_the_direction_every_photo_shares() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1, 64)
    vectors = rng.normal(0, 0.2, (200, 64)) + np.outer(rng.normal(3, 0.3, 200), shared)  # what every photo has
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    whitening = learn_whitening(vectors, max_dimensions=32)
    assert whitening is not None and whitening.projection.shape == (64, 32)
    out = whitening.apply(vectors)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    raw_cos = np.abs(vectors @ vectors.T)[np.triu_indices(200, 1)].mean()
    white_cos = np.abs(out @ out.T)[np.triu_indices(200, 1)].mean()
    assert white_cos < raw_cos / 2  # unrelated photos stop looking alike through the shared axis
    assert np.allclose(whitening.apply(vectors[0]), out[0], atol=1e-6)  # one vector or many, the same


def test_too_small_a_gallery_keeps_the_raw_vectors() -> None:
    assert learn_whitening(np.random.default_rng(1).normal(size=(10, 64))) is None
