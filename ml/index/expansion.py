"""Query expansion (αQE) and database-side augmentation (DBA) of global descriptors.

Both come from the retrieval literature the Google Landmark winners used: a descriptor is
replaced by a weighted sum of itself and its nearest neighbours (weights = similarity^α), so
a photo borrows the views its neighbours show. DBA does it to the gallery at index time, αQE
to the query before the search. Both are off by default; `landmarks compare` measures them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ml.index.vector_index import VectorIndex


@dataclass(frozen=True)
class ExpansionConfig:
    query_k: int = 0  # αQE neighbours (0: off)
    database_k: int = 0  # DBA neighbours (0: off)
    alpha: float = 3.0

    def to_dict(self) -> dict:
        return asdict(self)


def _weighted(vectors: np.ndarray, anchors: np.ndarray, scores: np.ndarray, rows: np.ndarray,
              alpha: float) -> np.ndarray:
    weights = np.clip(scores, 0.0, None) ** alpha  # [n, k]
    weights[rows < 0] = 0.0
    expanded = anchors + np.einsum("nk,nkd->nd", weights, vectors[np.clip(rows, 0, None)])
    return expanded / np.linalg.norm(expanded, axis=1, keepdims=True).clip(1e-12)


def augment_database(vectors: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """DBA: each gallery vector plus its k nearest other gallery vectors, weighted by similarity^α."""
    if k <= 0 or len(vectors) < 2:
        return vectors
    scores, rows = VectorIndex.build(vectors).search(vectors, k + 1)
    return _weighted(vectors, vectors, scores[:, 1:], rows[:, 1:], alpha).astype(np.float32)


def expand_query(index: VectorIndex, gallery: np.ndarray, vector: np.ndarray, k: int, alpha: float,
                 exclude_rows: frozenset[int] = frozenset()) -> np.ndarray:
    """αQE: the query plus its k nearest gallery vectors (never an excluded row), weighted by similarity^α."""
    if k <= 0:
        return vector
    scores, rows = index.search(vector[None, :], k + len(exclude_rows))
    kept = [(s, r) for s, r in zip(scores[0], rows[0]) if r >= 0 and r not in exclude_rows][:k]
    if not kept:
        return vector
    s = np.array([[s for s, _ in kept]], np.float32)
    r = np.array([[r for _, r in kept]])
    return _weighted(gallery, vector[None, :], s, r, alpha)[0].astype(np.float32)
