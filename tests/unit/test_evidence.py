"""What the fusion is given per landmark (the head speaks only for landmarks it saw more than one photo of), and
how much each gallery calibration sample counts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ml.evaluate import _top_probability_without
from ml.fusion import FusionParams, probabilities
from ml.index.bundle import IndexBundle, LandmarkInfo
from ml.index.vector_index import VectorIndex
from ml.indexer import BuildControl, calibration_samples, single_photo_landmarks
from ml.models.heads import train_linear_head, without_class
from ml.models.image_embedder import Embedding
from ml.models.local_features import LocalFeatures
from ml.recognize import gather_evidence

HEAD = 2  # the head's column in the evidence


class _NoInliers:
    glue_candidates = 0  # no second opinion

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        return 0

    def glue_inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        raise AssertionError("no landmark is asked a second time")


def _bundle() -> IndexBundle:
    rng = np.random.default_rng(0)
    labels = ["many"] * 3 + ["pair"] * 2 + ["single"]
    centres = {name: rng.normal(size=16) for name in set(labels)}
    vectors = np.stack([centres[label] + 0.1 * rng.normal(size=16) for label in labels]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 64), np.float32))
    return IndexBundle(
        version="v-test", model_id="m", local_model_id="l", photo_ids=list(range(len(labels))), row_landmarks=labels,
        landmarks={name: LandmarkInfo(name, name, None, None, None, "other", None, None) for name in set(labels)},
        vectors=VectorIndex.build(vectors), local=[empty] * len(labels),
        landmark_head=train_linear_head(vectors, labels), category_head=train_linear_head(vectors, ["other"] * 6),
        fusion=FusionParams.default(),
    )


def test_the_head_is_silent_for_a_landmark_with_one_gallery_photo() -> None:
    bundle = _bundle()
    query = bundle.gallery_matrix[0]  # a photo of "many": the head is sure the others are unlikely
    found = gather_evidence(bundle, _NoInliers(), query, bundle.local[0])
    head = dict(zip(found.classes, found.evidence[:, HEAD]))
    assert head["single"] == 0.0  # no objection: retrieval and verification judge it alone
    assert head["pair"] < -1.0 and head["many"] > head["pair"]  # learned from several photos, the head speaks


def test_rows_a_calibration_query_hides_count_as_gone() -> None:
    bundle = _bundle()
    pair_rows = [row for row, label in enumerate(bundle.row_landmarks) if label == "pair"]
    query = bundle.gallery_matrix[pair_rows[0]]
    logp = bundle.landmark_head.log_proba(query[None, :])[0]
    seen = gather_evidence(bundle, _NoInliers(), query, bundle.local[0], head_log_proba=logp)
    left_out = gather_evidence(bundle, _NoInliers(), query, bundle.local[0], head_log_proba=logp,
                               exclude_rows=frozenset({pair_rows[0]}))  # leave-one-out: "pair" keeps one photo
    column = seen.classes.index("pair")
    assert seen.evidence[column, HEAD] == np.float32(logp[column]) != 0.0
    assert left_out.evidence[column, HEAD] == 0.0


def test_a_left_out_landmark_weighs_one_unknown_however_many_photos_it_has() -> None:
    bundle = _bundle()
    labels = bundle.row_landmarks
    distractor = bundle.gallery_matrix[:1] * -1
    calibration = calibration_samples(bundle, _NoInliers(), bundle.gallery_matrix, labels, distractor,
                                      [bundle.local[0]], BuildControl())
    samples, weights = calibration.fitting_weights()
    groups = [g for g, fits in zip(calibration.groups, calibration.fits_weights) if fits]
    unknown_weight: dict[str, float] = {}
    for (_, target), group, weight in zip(samples, groups, weights):
        if target >= 0:
            assert weight == 1.0  # each photo asked against the rest of its landmark is its own right answer
        else:
            unknown_weight[group] = unknown_weight.get(group, 0.0) + weight
    assert unknown_weight == {"many": 1.0, "pair": 1.0, "single": 1.0, "distractor-0": 1.0}
    assert sum(target >= 0 for _, target in samples) == 5  # "single" has no other photo to be found by


def test_photos_of_a_landmark_with_three_or_more_are_asked_again_against_its_least_alike_photo_alone() -> None:
    bundle = _bundle()  # "many" has rows 0-2
    labels = bundle.row_landmarks
    calibration = calibration_samples(bundle, _NoInliers(), bundle.gallery_matrix, labels,
                                      np.zeros((0, 16), np.float32), [], BuildControl())
    kept = [i for i, fits in enumerate(calibration.fits_weights) if not fits]
    # Only "many" has two other photos to choose the least alike from; its three photos weigh one in all.
    assert [calibration.groups[i] for i in kept] == ["many"] * 3
    assert sum(calibration.weights[i] for i in kept) == pytest.approx(1.0)
    column = bundle.landmark_head.classes.index("many")
    assert all(calibration.samples[i][1] == column for i in kept)
    # With one photo of "many" left, the head is silent for it, as for a landmark with one gallery photo.
    assert all(calibration.samples[i][0][column, HEAD] == 0.0 for i in kept)
    similarity = bundle.gallery_matrix[:3] @ bundle.gallery_matrix[:3].T
    for query, i in enumerate(kept):
        least_alike = min((row for row in range(3) if row != query), key=lambda row: similarity[query, row])
        assert calibration.samples[i][0][column, 0] == pytest.approx(similarity[query, least_alike], abs=1e-5)


def test_the_evaluation_asks_a_photo_again_as_if_its_landmark_were_unknown() -> None:
    bundle = _bundle()
    recognizer = SimpleNamespace(bundle=bundle, matcher=_NoInliers())
    query = bundle.gallery_matrix[0]  # a photo of "many", so close to its two other photos
    found = gather_evidence(bundle, _NoInliers(), query, bundle.local[0])
    found.embedding, found.local = Embedding(query, np.zeros(1000, np.float32)), bundle.local[0]
    p_seen, _ = probabilities(found.evidence, bundle.fusion)
    assert found.classes[int(p_seen.argmax())] == "many"
    hidden = _top_probability_without(recognizer, "many", found)  # type: ignore[arg-type]
    # With "many" gone, what is left is "pair" and "single", neither like the photo: the top-1 falls to what
    # the fusion gives a stranger, as the same evidence with "many" dropped gives it.
    assert hidden < p_seen.max() / 2
    others = [i for i, name in enumerate(found.classes) if name != "many"]
    rows = frozenset(row for row, label in enumerate(bundle.row_landmarks) if label == "many")
    by_hand = gather_evidence(bundle, _NoInliers(), query, bundle.local[0], exclude_rows=rows,
                              head_log_proba=without_class(bundle.landmark_head.log_proba(query[None, :])[0],
                                                           found.classes.index("many")))
    assert hidden == float(probabilities(by_hand.evidence[others], bundle.fusion)[0].max())


def test_the_admin_is_told_which_landmarks_have_one_gallery_photo() -> None:
    bundle = _bundle()  # "many" has three photos, "pair" two, "single" one
    bundle.landmarks["single"].name_en = "Lonely Tower"
    assert single_photo_landmarks(bundle) == ["Lonely Tower"]
    bundle.landmarks["single"].name_en = ""  # a landmark without an English name is named by its id
    assert single_photo_landmarks(bundle) == ["single"]


class _RowCounts:
    """Nearest-neighbour inliers that name the gallery row (10 × (row + 1)); LighterGlue finds 500 on any pair and
    records which rows it was asked about."""

    glue_candidates = 1

    def __init__(self) -> None:
        self.glued: list[int] = []

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        return int(gallery.keypoints[0, 0])

    def glue_inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        self.glued.append(int(gallery.keypoints[0, 0]) // 10 - 1)
        return 500


def test_only_the_leading_landmark_gets_a_second_opinion_on_its_best_photo() -> None:
    bundle = _bundle()
    bundle.local = [LocalFeatures(np.full((1, 2), 10 * (row + 1), np.float32), np.zeros((1, 64), np.float32))
                    for row in range(len(bundle.row_landmarks))]
    verifier = _RowCounts()
    found = gather_evidence(bundle, verifier, bundle.gallery_matrix[0], bundle.local[0])
    inliers = dict(zip(found.classes, found.inliers.tolist()))
    assert verifier.glued == [5]  # "single" (row 5: 60 inliers) leads; "pair" (rows 3-4) and "many" are not asked
    assert inliers == {"single": 500, "pair": 50, "many": 30}
    assert found.evidence[found.classes.index("single"), 1] == np.float32(np.log1p(500))
