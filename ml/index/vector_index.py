"""faiss index over L2-normalised vectors; inner product = cosine similarity.

The index type depends on the gallery size (faiss wiki, "Guidelines to choose an
index"): exact search while it is cheap, HNSW when the gallery outgrows that.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

EXACT_SEARCH_LIMIT = 50_000


def factory_string(n_vectors: int) -> str:
    """The one place that decides the index structure from the gallery size."""
    if n_vectors <= EXACT_SEARCH_LIMIT:
        return "Flat"
    return "HNSW32,Flat"


class VectorIndex:
    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.index_factory(vectors.shape[1], factory_string(len(vectors)), faiss.METRIC_INNER_PRODUCT)
        index.add(vectors)
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        return cls(faiss.read_index(str(path)))

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def vectors(self) -> np.ndarray:
        """Every stored vector, in row order (a live gallery change rebuilds the index from them)."""
        return self._index.reconstruct_n(0, len(self)) if len(self) else np.zeros((0, self._index.d), np.float32)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [n, k], rows [n, k]); rows are -1 where fewer than k vectors exist."""
        k = max(1, min(k, len(self)))
        return self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
