"""αQE and DBA: a descriptor borrows its neighbours' views, weighted by similarity^α."""

from __future__ import annotations

import numpy as np

from ml.index.expansion import augment_database, expand_query
from ml.index.vector_index import VectorIndex


def _unit(*rows: list[float]) -> np.ndarray:
    array = np.array(rows, np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_database_augmentation_pulls_neighbours_together_and_keeps_unit_length() -> None:
    gallery = _unit([1, 0.2, 0], [1, -0.2, 0], [0, 0, 1])
    augmented = augment_database(gallery, k=1, alpha=3.0)
    assert np.allclose(np.linalg.norm(augmented, axis=1), 1, atol=1e-5)
    assert augmented[0] @ augmented[1] > gallery[0] @ gallery[1]  # two views of one place move closer
    assert augment_database(gallery, k=0, alpha=3.0) is gallery


def test_query_expansion_never_borrows_an_excluded_row() -> None:
    gallery = _unit([1, 0.1, 0], [0.9, 0, 0.5], [0, 1, 0])
    index = VectorIndex.build(gallery)
    query = _unit([1, 0, 0])[0]
    expanded = expand_query(index, gallery, query, k=1, alpha=1.0)
    expected = (query + (gallery[0] @ query) * gallery[0])
    assert np.allclose(expanded, expected / np.linalg.norm(expected), atol=1e-5)
    without_first = expand_query(index, gallery, query, k=1, alpha=1.0, exclude_rows=frozenset({0}))
    assert without_first[2] > 0.1  # it borrowed row 1 (the only one with a z part) instead
