"""PCA whitening of global descriptors, learned on the gallery at index time.

Descriptors of one backbone share a few dominant directions (sky, stone texture, photo
style) that make unrelated buildings look alike; whitening centres the vectors, rotates them
onto the gallery's principal axes and divides each axis by its spread, so similarity is
decided by the directions that tell buildings apart (Radenović et al., "learned whitening").
A gallery of a hundred photos cannot estimate 1280 variances, so only the leading axes are
kept and every variance is shrunk towards their mean before dividing (a small axis is
noise, not a reason to be amplified). Queries are whitened with the gallery's transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DIMENSIONS = 128
SHRINKAGE = 1.0  # every variance gets this times the mean kept variance added
MIN_PHOTOS_PER_DIMENSION = 2  # fewer photos than 2 per kept axis: not enough to learn from, keep the raw vectors


@dataclass
class Whitening:
    mean: np.ndarray  # [d]
    projection: np.ndarray  # [d, k]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Whiten and L2-normalise, [n, d] → [n, k] (a single [d] vector → [k])."""
        whitened = (np.asarray(vectors, dtype=np.float32) - self.mean) @ self.projection
        norms = np.linalg.norm(whitened, axis=-1, keepdims=True)
        return (whitened / np.clip(norms, 1e-12, None)).astype(np.float32)


def learn_whitening(vectors: np.ndarray, max_dimensions: int = MAX_DIMENSIONS,
                    shrinkage: float = SHRINKAGE) -> Whitening | None:
    """Whitening from gallery vectors, or None when the gallery is too small for even a few axes."""
    n, d = vectors.shape
    dimensions = min(max_dimensions, d, n // MIN_PHOTOS_PER_DIMENSION)
    if dimensions < 8:
        return None
    data = np.asarray(vectors, dtype=np.float64)
    mean = data.mean(axis=0)
    variances, axes = np.linalg.eigh(np.cov((data - mean).T))
    order = np.argsort(variances)[::-1][:dimensions]
    kept = np.clip(variances[order], 0.0, None)
    projection = axes[:, order] / np.sqrt(kept + shrinkage * kept.mean())
    return Whitening(mean.astype(np.float32), projection.astype(np.float32))
