"""photo → embed → search → verify shortlist → fuse with heads → calibrated answer.

The same evidence function serves live queries and the leave-one-out calibration at
index time, so the fitted fusion weights describe exactly what runs in production.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from PIL import Image

from ml.fusion import landmark_evidence, probabilities
from ml.index.bundle import IndexBundle
from ml.index.embedding_cache import at_stored_precision
from ml.index.expansion import expand_query
from ml.models.blas_threads import one_blas_thread, one_torch_thread_each
from ml.models.heads import without_class
from ml.models.image_embedder import Embedding, ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher, LocalFeatures
from ml.models.place_categories import place_category_proba
from storage.schemas import CATEGORIES, CategoryScore, LandmarkScore, RecognitionResult

SEARCH_DEPTH = 256
# Gallery rows verified with local features: as deep as the raw retrieval's recall reaches. On the dev set and on 8
# re-splits of it, exactly one landmark query's first right row sits at rank 12-19, never beyond 20 (10 rows
# left it unverified: P@5 0.978 -> 1.0, P@1 0.957 -> 0.978); it costs ~50 ms a photo, p95 stays under 300 ms.
SHORTLIST = 20
TOP_K = 5
EXAMPLES = 3


@dataclass
class QueryEvidence:
    classes: list[str]  # landmark ids, in the order of the rows below
    evidence: np.ndarray  # [L, 3]
    similarity: np.ndarray  # [L]
    inliers: np.ndarray  # [L]
    ranked_rows: list[int]  # gallery rows, most similar first (shortlist first)
    embedding: Embedding | None = None  # the query's own descriptor and ImageNet logits, when it was a photo
    local: LocalFeatures | None = None  # and its keypoints, to ask the same photo of a smaller gallery


class Verifier(Protocol):
    """What the evidence needs of local features: inliers of a query photo against a gallery photo, and a second
    opinion on the `glue_candidates` landmarks those put first."""

    @property
    def glue_candidates(self) -> int: ...

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int: ...

    def glue_inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int: ...


def gather_evidence(
    bundle: IndexBundle,
    matcher: Verifier,
    vector: np.ndarray,
    local: LocalFeatures,
    *,
    exclude_rows: frozenset[int] = frozenset(),
    head_log_proba: np.ndarray | None = None,
    shortlist: int = SHORTLIST,
    verify_pool: Executor | None = None,
) -> QueryEvidence:
    """Evidence for every gallery landmark; `exclude_rows` and `head_log_proba` serve leave-out calibration,
    `verify_pool` verifies the shortlist's pairs side by side (calibration runs whole queries side by side)."""
    classes = bundle.landmark_head.classes
    column = {name: i for i, name in enumerate(classes)}
    search_vector = vector
    if bundle.expansion.query_k:
        search_vector = expand_query(bundle.vectors, bundle.gallery_matrix, vector, bundle.expansion.query_k,
                                     bundle.expansion.alpha, exclude_rows)
    scores, rows = bundle.vectors.search(search_vector[None, :], SEARCH_DEPTH + len(exclude_rows))
    pairs = [(float(s), int(r)) for s, r in zip(scores[0], rows[0]) if r >= 0 and r not in exclude_rows]
    floor = pairs[-1][0] if pairs else 0.0
    similarity = np.full(len(classes), floor, dtype=np.float32)
    seen: set[str] = set()
    for score, row in pairs:
        landmark = bundle.row_landmarks[row]
        if landmark not in seen:
            similarity[column[landmark]] = score
            seen.add(landmark)
    inliers = np.zeros(len(classes), dtype=np.float32)
    best_row: dict[int, int] = {}  # landmark column -> its verified row with the most inliers
    verified = [row for _, row in pairs[:shortlist]]
    for row, count in zip(verified, _verify(matcher.inliers, local, [bundle.local[row] for row in verified],
                                            verify_pool)):
        col = column[bundle.row_landmarks[row]]
        if col not in best_row or count > inliers[col]:
            inliers[col], best_row[col] = count, row
    _second_opinion(bundle, matcher, local, inliers, similarity, best_row, verify_pool)
    head = bundle.landmark_head.log_proba(vector[None, :])[0] if head_log_proba is None else head_log_proba
    head = _silence_single_photo_landmarks(bundle, column, head, exclude_rows)
    return QueryEvidence(classes, landmark_evidence(similarity, inliers, head), similarity, inliers,
                         [row for _, row in pairs])


def _second_opinion(bundle: IndexBundle, matcher: Verifier, local: LocalFeatures, inliers: np.ndarray,
                    similarity: np.ndarray, best_row: dict[int, int], pool: Executor | None) -> None:
    """Raises the inliers of the landmarks that lead on them (ties: the more similar first) to LighterGlue's
    count on their best photo where it finds more. Only the leaders: the answer and its rival are what the
    probabilities turn on, and LighterGlue costs a few times a nearest-neighbour match.

    A nearest neighbour compares one keypoint's descriptor at a time, so across day and night or summer and
    winter a right pair found 4-20 inliers, as many as a distractor's best (5-8). On the dev set's landmarks
    with one photo on each side, LighterGlue at 1024 keypoints found 5-346 on the right pairs (14-209 on all
    but two) and 0-47 on the best wrong ones and the distractors' (12 or fewer on most): the separation (AUC)
    0.87 -> 0.94, and 0.93 at the 384 keypoints it reads here (`LocalFeatureConfig.glue_keypoints`). The
    leaders' pairs run side by side when given a pool (two pairs at 256 keypoints: ~68 -> ~49 ms here)."""
    leaders = sorted((col for col in best_row if inliers[col] > 0),
                     key=lambda col: (-inliers[col], -similarity[col]))[: matcher.glue_candidates]
    counts = _verify(matcher.glue_inliers, local, [bundle.local[best_row[col]] for col in leaders], pool)
    for col, count in zip(leaders, counts):
        inliers[col] = max(inliers[col], count)


def evidence_without_landmark(
    bundle: IndexBundle, matcher: Verifier, vector: np.ndarray, local: LocalFeatures, landmark_id: str,
    head_log_proba: np.ndarray,
) -> np.ndarray:
    """Evidence [L-1, 3] for the other landmarks, had the gallery never held `landmark_id`: its photos hidden from
    search and verification, its class from the head (`head_log_proba`, the head's answer with the class still
    in), and its column dropped. A photo of that landmark then shows a real building the gallery does not know:
    the calibration's "left-out landmark" unknowns and the evaluation's unknown-landmark figure are both this."""
    column = bundle.landmark_head.classes.index(landmark_id)
    found = gather_evidence(bundle, matcher, vector, local, exclude_rows=bundle.rows_of_landmark[landmark_id],
                            head_log_proba=without_class(head_log_proba, column))
    return np.delete(found.evidence, column, 0)


def _verify(count: Callable[[LocalFeatures, LocalFeatures], int], local: LocalFeatures, gallery: list[LocalFeatures],
            pool: Executor | None) -> list[int]:
    """`count` (nearest-neighbour or LighterGlue inliers) of the query against each gallery photo, in order: two
    pairs at a time on one BLAS thread each when given a pool, else one after the other. The counts are the
    same. For the nearest-neighbour shortlist with a pool, the dev set's queries,
    measured back to back on this machine, went: search + verify p95 101 -> 73 ms, and the whole answer p50
    229 -> 167 ms, p95 254 -> 200 ms. The forward passes got faster too, since a two-thread BLAS left its
    threads spinning against torch's pool into the next photo (as the text encoder's comment found)."""
    if pool is None:
        return [count(local, features) for features in gallery]
    with one_blas_thread():
        return list(pool.map(lambda features: count(local, features), gallery))


def _silence_single_photo_landmarks(bundle: IndexBundle, column: dict[str, int], head_log_proba: np.ndarray,
                                    exclude_rows: frozenset[int]) -> np.ndarray:
    """The head's say is dropped (log-probability 0: no objection) for a landmark with one gallery photo.

    Trained on one photo of a landmark, the head knows that photo, which the similarity and the inliers
    already score, and it calls other views of the place unlikely (a right answer got -4.7 on the dev set).
    The fusion cannot learn how far to trust it there either: the gallery gives no right answer for such a
    landmark to fit on, so the head's weight describes landmarks with several photos. On the dev split and 7
    re-splits of it, the mean P@1 went 0.970 -> 0.986, GAP 0.913 -> 0.931 and false rejection 0.082 -> 0.060, while
    distractor rejection went 1.0 -> 0.988 and ECE 0.094 -> 0.103 (a fitted weight for "one photo" instead
    went to about -1.3 and took distractor rejection down to 0.931). Counted without the rows a leave-out
    calibration query hides, so its evidence is what a query would see in that smaller gallery."""
    rows = bundle.photos_per_landmark.copy()
    for row in exclude_rows:
        rows[column[bundle.row_landmarks[row]]] -= 1
    return np.where(rows <= 1, 0.0, head_log_proba).astype(np.float32)


T = TypeVar("T")

# The two forward passes are independent: the local features run beside the global descriptor, as each
# alone leaves part of the two cores idle (photo → both, p50 ~130 → ~110 ms here). One pool per process:
# a Recognizer is made at every index swap, and the worker answers one photo at a time.
_FORWARD = one_torch_thread_each(2, "forward")
_VERIFY = one_torch_thread_each(2, "verify")  # the machine has two cores


def _timed(work: Callable[[Image.Image], T], image: Image.Image, done: threading.Event) -> tuple[T, float]:
    """`work(image)` and its milliseconds; `done` is set as it finishes, to hand its core to the other pass."""
    started = time.perf_counter()
    try:
        return work(image), 1000 * (time.perf_counter() - started)
    finally:
        done.set()


def extract_features(embedder: ImageEmbedder, matcher: LocalFeatureMatcher,
                     image: Image.Image) -> tuple[Embedding, LocalFeatures, float, float]:
    """Both forward passes, side by side: (embedding, local features, embed ms, local-features ms), at the
    precision the embedding cache and the index keep them. The pass that finishes first hands its core to the
    other's remaining layers; the embedding usually does, as XFeat's cost grows with the photo (up to 1024 px).
    On an AMD EPYC with bfloat16, the dev queries' two passes together, each photo with and without it back to
    back: 108 -> 91 ms at the mean, 158 -> 131 ms at p95 (handing over one way only, embedding to XFeat: 92 and
    129); `landmarks eval` the same hour: the answer's p95 270 -> 224 and 249 ms, every answer the same."""
    embedded, extracted = threading.Event(), threading.Event()
    extract = functools.partial(matcher.extract, spare_core=embedded)
    embed = functools.partial(embedder.embed_one, spare_core=extracted)
    local_job = _FORWARD.submit(_timed, extract, image, extracted)
    embed_job = _FORWARD.submit(_timed, embed, image, embedded)
    (embedding, embed_ms), (local, local_ms) = embed_job.result(), local_job.result()
    embedding, local = at_stored_precision(embedding, local)
    return embedding, local, embed_ms, local_ms


class Recognizer:
    """Holds the loaded models and the active index; `recognize` is blocking, call it off the event loop."""

    def __init__(self, embedder: ImageEmbedder, matcher: LocalFeatureMatcher, bundle: IndexBundle) -> None:
        self.embedder = embedder
        self.matcher = matcher
        self.bundle = bundle

    def recognize(self, image: Image.Image) -> RecognitionResult:
        return self.explain(image)[0]

    def explain(self, image: Image.Image) -> tuple[RecognitionResult, QueryEvidence]:
        """The answer and the evidence behind it (the evaluation reads the raw retrieval from it)."""
        started = time.perf_counter()
        raw, local, embed_ms, local_ms = extract_features(self.embedder, self.matcher, image)
        t_features = time.perf_counter()
        embedding, found = self.evidence(raw, local)
        t_search = time.perf_counter()
        result = self.answer(embedding, found)
        result.timings_ms = {
            "embed": embed_ms,
            "local_features": local_ms,  # ran beside the embedding: the two overlap within "total"
            "search_verify": 1000 * (t_search - t_features),
            "total": 1000 * (time.perf_counter() - started),
        }
        return result, found

    def evidence(self, raw: Embedding, local: LocalFeatures) -> tuple[Embedding, QueryEvidence]:
        """A photo's features (as extracted, or from the embedding cache) searched and verified in this index:
        its descriptor in the index's space, and the evidence."""
        embedding = Embedding(self.bundle.to_index_space(raw.vector), raw.imagenet_logits)
        found = gather_evidence(self.bundle, self.matcher, embedding.vector, local, verify_pool=_VERIFY)
        found.embedding, found.local = embedding, local
        return embedding, found

    def answer(self, embedding: Embedding, found: QueryEvidence) -> RecognitionResult:
        bundle = self.bundle
        p_landmarks, p_unknown = probabilities(found.evidence, bundle.fusion)
        order = np.argsort(-p_landmarks)[:TOP_K]
        landmarks = []
        for i in order:
            info = bundle.landmarks[found.classes[i]]
            landmarks.append(LandmarkScore(
                landmark_id=info.id, name_en=info.name_en, name_ru=info.name_ru, city=info.city,
                country=info.country, category=info.category, lat=info.lat, lon=info.lon,
                probability=float(p_landmarks[i]), similarity=float(found.similarity[i]),
                inliers=int(found.inliers[i]),
            ))
        categories = self._categories(embedding, found.classes, p_landmarks, p_unknown)
        recognized = bool(landmarks) and landmarks[0].probability >= bundle.fusion.threshold
        best = landmarks[0].landmark_id if landmarks else None
        examples = [bundle.photo_ids[row] for row in found.ranked_rows if bundle.row_landmarks[row] == best]
        return RecognitionResult(
            recognized=recognized, landmarks=landmarks, categories=categories, unknown_probability=p_unknown,
            example_photo_ids=examples[:EXAMPLES], index_version=bundle.version, model=bundle.model_id,
        )

    def _categories(
        self, embedding: Embedding, classes: list[str], p_landmarks: np.ndarray, p_unknown: float
    ) -> list[CategoryScore]:
        """P(category) = Σ P(landmark) over its landmarks + P(unknown) · P(category of a place the gallery lacks)."""
        totals = dict.fromkeys(CATEGORIES, 0.0)
        for landmark_id, p in zip(classes, p_landmarks):
            totals[self.bundle.landmarks[landmark_id].category] += float(p)
        unknown_place = place_category_proba(self.bundle.category_head, self.bundle.place_weights,
                                             embedding.vector, embedding.imagenet_logits)
        for category, p in zip(CATEGORIES, unknown_place):
            totals[category] += p_unknown * float(p)
        ranked = sorted(totals.items(), key=lambda item: -item[1])[:TOP_K]
        return [CategoryScore(category=c, probability=p) for c, p in ranked]
