"""A photo's features are the same just extracted as read back from the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ml.index.embedding_cache import EmbeddingCache, PhotoEmbedding
from ml.models.image_embedder import ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher
from ml.recognize import extract_features


def _facade() -> Image.Image:
    """Windows in rows on a wall, some noise: enough corners for keypoints and texture for descriptors."""
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((480, 640, 3)) * 40 + 150).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for row in range(5):
        for column in range(8):
            x, y = 30 + 75 * column, 40 + 85 * row
            draw.rectangle([x, y, x + 40, y + 55], fill=(40 + 20 * row, 60, 90 + 10 * column))
    return image


def test_extracted_features_equal_their_cached_copy(tmp_path: Path) -> None:
    embedder, matcher = ImageEmbedder(), LocalFeatureMatcher()
    embedding, local, _, _ = extract_features(embedder, matcher, _facade())
    assert len(local.keypoints) > 50
    cache = EmbeddingCache(tmp_path, "test")
    cache.put("ab" * 32, PhotoEmbedding(embedding.vector, embedding.imagenet_logits, local))
    cached = cache.get("ab" * 32)
    assert cached is not None
    assert np.array_equal(cached.vector, embedding.vector)
    assert np.array_equal(cached.imagenet_logits, embedding.imagenet_logits)
    assert np.array_equal(cached.local.keypoints, local.keypoints)
    assert np.array_equal(cached.local.descriptors, local.descriptors)
    assert cached.local.descriptors.dtype == local.descriptors.dtype == np.float32
    # and so the same pair verifies alike whichever copy it uses
    assert matcher.inliers(local, cached.local) == matcher.inliers(cached.local, cached.local)
