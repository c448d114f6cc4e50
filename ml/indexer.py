"""Build a new index version from the gallery and make it the one that serves.

Embeds every gallery photo (global descriptor + local features; photos already embedded
with the same models come from the embedding cache), trains the landmark and category
heads, fits the fusion weights and the rejection threshold by leave-one-out on the gallery
(gallery distractors as negatives), encodes the landmarks' names for text search, writes
the version folder beside the old ones, and flips the active pointer in the database in one
transaction. Until that flip the old version serves; a build that fails or is cancelled
leaves it serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ml.fusion import fit_fusion, probabilities
from ml.held_back import measure_held_back
from ml.index.bundle import IndexBundle, LandmarkInfo
from ml.index.embedding_cache import EmbeddingCache, PhotoEmbedding
from ml.index.expansion import ExpansionConfig, augment_database
from ml.index.vector_index import VectorIndex
from ml.index.whitening import learn_whitening
from ml.models.blas_threads import one_blas_thread, one_torch_thread_each
from ml.models.heads import out_of_fold_log_proba, train_linear_head
from ml.models.image_embedder import ImageEmbedder
from ml.models.local_features import LocalFeatureMatcher, LocalFeatures
from ml.models.place_categories import fit_place_weights
from ml.recognize import evidence_without_landmark, extract_features, gather_evidence
from ml.settings import MLSettings
from ml.text.encoders import TextEncoder, encoders_from_settings
from ml.text.search import LandmarkText, TextCorpus
from storage.images import ImageRejected, decode_image
from storage.photo_store import PhotoStore
from storage.repositories import GalleryPhoto, Repositories

log = logging.getLogger(__name__)

# Bump when the build itself changes (what is fitted, how), so "nothing new" does not keep an index made the old way.
BUILD_METHOD = 12  # 2: fusion temperature, ImageNet evidence for unknown places; 3: PCA whitening; 4: 20-row shortlist;
# 5: no head evidence for single-photo landmarks; 6: a left-out landmark's photos weigh one unknown in all;
# 7: the temperature and an unknown-logit shift fitted for the top-1's correctness too, on features as stored;
# 8: the category head's weight for unknown places fitted beside ImageNet's; 9: the temperature fitted on
# the held-out top-1 alone, with a prior on its log; 10: kept-hardest samples for the temperature;
# 11: the temperature scored by Brier, its prior chosen by folds of the gallery; 12: LighterGlue's second opinion
# on the leading landmarks (also in the local model id)
CALIBRATION_THREADS = 2  # the machine the bars are set on has two cores
Progress = Callable[[str, int, int], None]  # (stage, done, total): embed, calibrate, held_back, text, save


class EmptyGallery(RuntimeError):
    pass


class IndexCancelled(RuntimeError):
    pass


@dataclass
class IndexModels:
    """Everything that turns photos and names into an index; loaded once per process."""

    embedder: ImageEmbedder
    matcher: LocalFeatureMatcher
    text_encoders: list[TextEncoder]
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)
    whitening: bool = True  # PCA whitening learned on the gallery at each build

    @classmethod
    def default(cls) -> IndexModels:
        """The models a deployment runs: the default image models and the configured text encoders."""
        return cls(ImageEmbedder(), LocalFeatureMatcher(), encoders_from_settings())

    @property
    def signature(self) -> str:
        """Which models made an embedding: a change means every photo is embedded again. How keypoints are
        matched (the ratio test, a gallery photo's keypoints) is not part of it: a change there recalibrates
        the index from the embeddings already cached (the index's content signature names it)."""
        return f"{self.embedder.model_id}+{self.matcher.config.extraction_id}"


@dataclass
class BuildControl:
    """How a caller follows and stops a build that runs in a thread."""

    progress: Progress | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def report(self, stage: str, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise IndexCancelled("the reindex was cancelled")
        if self.progress:
            self.progress(stage, done, total)


def new_version_name() -> str:
    return datetime.now(timezone.utc).strftime("v%Y%m%d-%H%M%S-%f")


@dataclass
class EmbeddedGallery:
    """The photos that decoded, row by row, and what was made of them."""

    photos: list[GalleryPhoto]
    vectors: np.ndarray  # [n, d]
    imagenet_logits: np.ndarray  # [n, 1000]
    local: list[LocalFeatures]
    skipped: list[str]  # corrupt photos, with the reason
    embedded: int  # how many were really embedded (the rest came from the cache)


def embed_photos(
    photos: list[GalleryPhoto], store: PhotoStore, models: IndexModels, cache: EmbeddingCache | None = None,
    control: BuildControl | None = None, refresh: bool = False, stage: str = "embed",
) -> EmbeddedGallery:
    """Embeds what decodes (from the cache when it can, unless `refresh` asks to embed every photo again and
    overwrite the cache); corrupt photos are skipped and listed, never fatal."""
    control = control or BuildControl()
    kept: list[GalleryPhoto] = []
    rows: list[PhotoEmbedding] = []
    skipped: list[str] = []
    embedded = 0
    for done, photo in enumerate(photos, start=1):
        cached = cache.get(photo.sha256) if cache and not refresh else None
        if cached is None:
            try:
                image = decode_image(store.read(photo.path))
            except (ImageRejected, OSError) as exc:
                skipped.append(f"photo {photo.id} ({Path(photo.path).name}): {exc}")
                log.warning("index.photo_skipped photo_id=%s reason=%s", photo.id, exc)
                control.report(stage, done, len(photos))
                continue
            global_embedding, local_features, _, _ = extract_features(models.embedder, models.matcher, image)
            cached = PhotoEmbedding(global_embedding.vector, global_embedding.imagenet_logits, local_features)
            embedded += 1
            if cache:
                cache.put(photo.sha256, cached)
        kept.append(photo)
        rows.append(cached)
        control.report(stage, done, len(photos))
    return EmbeddedGallery(
        photos=kept,
        vectors=np.stack([r.vector for r in rows]) if rows else np.zeros((0, 1), np.float32),
        imagenet_logits=np.stack([r.imagenet_logits for r in rows]) if rows else np.zeros((0, 1000), np.float32),
        local=[r.local for r in rows],
        skipped=skipped,
        embedded=embedded,
    )


def build_bundle(
    gallery: EmbeddedGallery, landmarks: dict[str, LandmarkInfo], embedder: ImageEmbedder,
    matcher: LocalFeatureMatcher, false_accept_rate: float = 0.05, control: BuildControl | None = None,
    expansion: ExpansionConfig | None = None, whiten: bool = True,
) -> IndexBundle:
    photos, local = gallery.photos, gallery.local
    expansion = expansion or ExpansionConfig()
    whitening = learn_whitening(gallery.vectors) if whiten else None  # from every gallery photo, distractors too
    vectors = whitening.apply(gallery.vectors) if whitening else gallery.vectors
    landmark_rows = [i for i, p in enumerate(photos) if p.landmark_id is not None]
    distractor_rows = [i for i, p in enumerate(photos) if p.landmark_id is None]
    if not landmark_rows:
        raise EmptyGallery("the gallery has no landmark photos: run `landmarks import DIR` first")
    gallery_vectors = vectors[landmark_rows]
    labels = [photos[i].landmark_id for i in landmark_rows]
    categories = [landmarks[label].category for label in labels]
    bundle = IndexBundle(
        version=new_version_name(),
        model_id=embedder.model_id,
        local_model_id=matcher.config.model_id,
        photo_ids=[photos[i].id for i in landmark_rows],
        row_landmarks=labels,
        landmarks={k: v for k, v in landmarks.items() if k in set(labels)},
        vectors=VectorIndex.build(augment_database(gallery_vectors, expansion.database_k, expansion.alpha)),
        local=[local[i] for i in landmark_rows],
        landmark_head=train_linear_head(gallery_vectors, labels),
        category_head=train_linear_head(gallery_vectors, categories),
        place_weights=fit_place_weights(gallery_vectors, gallery.imagenet_logits[landmark_rows], labels, categories),
        fusion=fit_fusion([]),
        expansion=expansion,
        whitening=whitening,
    )
    calibration = calibration_samples(bundle, matcher, gallery_vectors, labels, vectors[distractor_rows],
                                      [local[i] for i in distractor_rows], control or BuildControl())
    bundle.fusion = fit_fusion(calibration.samples, false_accept_rate=false_accept_rate, groups=calibration.groups,
                               sample_weights=calibration.weights, fits_weights=calibration.fits_weights)
    samples, weights = calibration.fitting_weights()
    bundle.stats = gallery_stats(bundle, samples, weights, len(distractor_rows))
    return bundle


@dataclass
class CalibrationSet:
    """The gallery's calibration samples, each with the group it comes from (its landmark, or its distractor
    photo), for fitting out of sample, its weight, and whether the fusion's weights learn from it (the
    temperature always does)."""

    samples: list[tuple[np.ndarray, int]]
    groups: list[str]
    weights: list[float]
    fits_weights: list[bool]

    def fitting_weights(self) -> tuple[list[tuple[np.ndarray, int]], list[float]]:
        """The samples (and weights) the weights and the threshold were fitted on: what leave-one-out figures read."""
        kept = [i for i, fits in enumerate(self.fits_weights) if fits]
        return [self.samples[i] for i in kept], [self.weights[i] for i in kept]


def calibration_samples(
    bundle: IndexBundle, matcher: LocalFeatureMatcher, vectors: np.ndarray, labels: list[str],
    distractor_vectors: np.ndarray, distractor_local: list[LocalFeatures], control: BuildControl,
) -> CalibrationSet:
    """Evidence from the gallery alone, in four kinds (query photos never tune anything), the group
    each sample comes from (its landmark, or its distractor photo), for fitting out of sample, and the
    weight each sample has in the fit:

    - leave-one-out: a gallery photo against the rest; the answer is its landmark; weight 1;
    - leave-landmark-out: a gallery photo with every photo of its landmark removed, so it is a
      real building the gallery does not know; the answer is "unknown". The photos of one landmark
      share a weight of 1: they are one unknown building seen n times, not n unknown buildings.
      Counted one per photo, a landmark with 32 gallery photos made a quarter of all the unknowns
      (its look-alikes with 9-12 inliers taught the fusion that such counts mean "unknown"), and the
      unknowns outweighed the right answers by whatever the gallery's photo counts happened to be.
      Weighted, the mean over the dev split and 7 re-splits went: false rejection 0.060 -> 0.049,
      ECE 0.103 -> 0.084, GAP 0.931 -> 0.942, distractor rejection 0.988 -> 0.981;
    - gallery distractors (streets, interiors, replicas); the answer is "unknown"; weight 1 each,
      as each is a scene of its own;
    - kept-hardest, for the temperature only: a photo of a landmark with three or more, asked against a
      gallery that keeps just the photo of its landmark least like it (by the global descriptor); the answer is
      its landmark. The leave-one-out never asks for a landmark with one gallery photo, and the photos of a
      landmark with several are often of one visit, so without these the temperature never sees a right answer
      that rests on one photo taken from elsewhere (pooled over the dev split and 7 re-splits, answers naming
      a landmark with one gallery photo said 0.43 and were right 52 % of the time). The photos of one landmark
      share a weight of 1, as the left-out landmark's do. With them, ECE went 0.072 -> 0.070 on the dev split,
      0.063 -> 0.059 on average over the 8 splits (lower on 7) and 0.049 -> 0.043 pooled, with P@1, GAP,
      distractor and false rejection the same on every split. Learnt by the weights too, they moved P@1 on one
      re-split from 1.0 to 0.957; kept with a random photo rather than the least alike, the pooled ECE stayed at
      0.050 (temperature only) or rose to 0.062 (weights too).
    """
    classes = bundle.landmark_head.classes
    column = {name: i for i, name in enumerate(classes)}
    rows_of = bundle.rows_of_landmark
    held_out_head = out_of_fold_log_proba(vectors, labels, classes)
    queries: list[_CalibrationQuery] = []
    for row, label in enumerate(labels):
        if len(rows_of[label]) >= 2:
            queries.append(_CalibrationQuery(vectors[row], bundle.local[row], frozenset({row}), held_out_head[row],
                                             column[label], label))
        if len(classes) >= 3:
            queries.append(_CalibrationQuery(vectors[row], bundle.local[row], frozenset(), held_out_head[row], -1,
                                             label, left_out=label, weight=1.0 / len(rows_of[label])))
    for number, (vector, local) in enumerate(zip(distractor_vectors, distractor_local)):
        queries.append(_CalibrationQuery(vector, local, frozenset(), None, -1, f"distractor-{number}"))
    queries += _kept_hardest(vectors, labels, rows_of, bundle.local, held_out_head, column)
    samples: list[tuple[np.ndarray, int]] = []
    for done, (query, evidence) in enumerate(zip(queries, _evidence_of(bundle, matcher, queries)), start=1):
        samples.append((evidence, query.target))
        control.report("calibrate", done, len(queries))
    return CalibrationSet(samples, [query.group for query in queries], [query.weight for query in queries],
                          [query.fits_weights for query in queries])


def _kept_hardest(vectors: np.ndarray, labels: list[str], rows_of: dict[str, frozenset[int]],
                  local: list[LocalFeatures], held_out_head: np.ndarray,
                  column: dict[str, int]) -> list[_CalibrationQuery]:
    """Each photo of a landmark with three or more, asked with only the photo of its landmark least like it
    (by the global descriptor) left in the gallery: a landmark known by one photo, seen from elsewhere."""
    queries = []
    for row, label in enumerate(labels):
        mine = sorted(rows_of[label] - {row})
        if len(mine) < 2:  # with one other photo the leave-one-out already asks this
            continue
        kept = mine[int(np.argmin(vectors[mine] @ vectors[row]))]
        queries.append(_CalibrationQuery(vectors[row], local[row], rows_of[label] - {kept}, held_out_head[row],
                                         column[label], label, weight=1.0 / len(rows_of[label]), fits_weights=False))
    return queries


@dataclass
class _CalibrationQuery:
    """One gallery photo asked as a query, with what the gallery must not show it and the answer expected."""

    vector: np.ndarray
    local: LocalFeatures
    exclude_rows: frozenset[int]
    head_log_proba: np.ndarray | None  # from a head that never saw the photo (None: the index's own head)
    target: int  # column of its landmark, or -1 for "unknown"
    group: str
    left_out: str | None = None  # its landmark, for a landmark the gallery is made not to know
    weight: float = 1.0  # how much the sample counts in the fusion's fit and threshold
    fits_weights: bool = True  # False: only the temperature and the unknown shift learn from it


def _evidence_of(bundle: IndexBundle, matcher: LocalFeatureMatcher,
                 queries: list[_CalibrationQuery]) -> Iterator[np.ndarray]:
    """The queries' evidence in order, two at a time: verification is mostly single-threaded numpy and
    OpenCV work, so with BLAS held to one thread per call two calls fill the two cores (~30 % faster than one
    call with a two-thread BLAS, with the same inlier counts). Answers the worker serves meanwhile verify on
    one BLAS thread as they always do."""
    verifier = _RememberedInliers(matcher)

    def gather(query: _CalibrationQuery) -> np.ndarray:
        if query.left_out is not None:
            assert query.head_log_proba is not None
            return evidence_without_landmark(bundle, verifier, query.vector, query.local, query.left_out,
                                             query.head_log_proba)
        return gather_evidence(bundle, verifier, query.vector, query.local, exclude_rows=query.exclude_rows,
                               head_log_proba=query.head_log_proba).evidence

    pool = one_torch_thread_each(CALIBRATION_THREADS, "calibrate")
    try:
        with one_blas_thread():
            yield from pool.map(gather, queries)
    finally:  # a cancelled build stops at once instead of finishing the queries already queued
        pool.shutdown(wait=True, cancel_futures=True)


class _RememberedInliers:
    """A photo's leave-one-out and leave-landmark-out queries verify many of the same pairs (~20 % of the
    calibration's): each ordered pair is counted once. Keyed by object identity: the features stay put for the
    whole calibration."""

    def __init__(self, matcher: LocalFeatureMatcher) -> None:
        self.matcher = matcher
        self.counts: dict[tuple[str, int, int], int] = {}

    @property
    def glue_candidates(self) -> int:
        return self.matcher.glue_candidates

    def inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        return self._remembered(self.matcher.inliers, query, gallery, "nearest")

    def glue_inliers(self, query: LocalFeatures, gallery: LocalFeatures) -> int:
        return self._remembered(self.matcher.glue_inliers, query, gallery, "glue")

    def _remembered(self, count: Callable[[LocalFeatures, LocalFeatures], int], query: LocalFeatures,
                    gallery: LocalFeatures, kind: str) -> int:
        key = (kind, id(query), id(gallery))
        if key not in self.counts:  # two threads may both count a pair: the same number, once wasted
            self.counts[key] = count(query, gallery)
        return self.counts[key]


def gallery_stats(bundle: IndexBundle, samples: list[tuple[np.ndarray, int]], weights: list[float],
                  n_distractors: int) -> dict:
    """Leave-one-out figures on the gallery: what an admin sees after a rebuild. Unknowns count by their
    weight in the fit, the share the threshold was chosen to bound."""
    correct = accepted = n_pos = 0
    rejected_distractors = n_negatives = 0.0
    for (evidence, label), weight in zip(samples, weights):
        p, _ = probabilities(evidence, bundle.fusion)
        confident = p.max() >= bundle.fusion.threshold
        if label < 0:
            n_negatives += weight
            rejected_distractors += weight * (not confident)
        else:
            n_pos += 1
            correct += int(p.argmax() == label)
            accepted += int(confident)
    return {
        "n_photos": len(bundle.photo_ids),
        "n_landmarks": len(bundle.landmarks),
        "n_gallery_distractors": n_distractors,
        "loo_p_at_1": correct / n_pos if n_pos else None,
        "loo_accepted": accepted / n_pos if n_pos else None,
        "loo_unknown_rejection": rejected_distractors / n_negatives if n_negatives else None,
        "single_photo_landmarks": single_photo_landmarks(bundle),
        "fusion": bundle.fusion.to_dict(),
    }


def single_photo_landmarks(bundle: IndexBundle) -> list[str]:
    """Names of the landmarks with one gallery photo, for the admin: the leave-one-out never asks for them, so the
    calibration has no right answer of theirs to learn from, and their answers come out less sure than they are
    right (pooled over the dev split and 7 re-splits: said 0.57, right 60 %, against 0.75 and 73 % for landmarks
    with three or more). More photos of each are what an admin can give it."""
    return sorted(bundle.landmarks[landmark].name_en or landmark
                  for landmark, photos in zip(bundle.landmark_head.classes, bundle.photos_per_landmark) if photos == 1)


def landmark_infos(rows: dict) -> dict[str, LandmarkInfo]:  # type: ignore[type-arg]
    return {k: LandmarkInfo(id=v.id, name_en=v.name_en, name_ru=v.name_ru, city=v.city, country=v.country,
                            category=v.category, lat=v.lat, lon=v.lon) for k, v in rows.items()}


def content_signature(photos: list[GalleryPhoto], landmarks: dict[str, LandmarkText], models: IndexModels,
                      false_accept_rate: float, held_back: Sequence[GalleryPhoto] = ()) -> str:
    """What an index and its figures are made of; the same signature twice means a rebuild would give the same
    index, measured on the same held-back photos."""
    content = {
        "held_back": sorted((p.sha256, p.landmark_id or "") for p in held_back),
        "build": BUILD_METHOD,
        "models": [models.signature, models.matcher.config.model_id, *sorted(e.model_id for e in models.text_encoders)],
        "expansion": models.expansion.to_dict(),
        "whitening": models.whitening,
        "photos": sorted((p.sha256, p.landmark_id or "") for p in photos),
        "landmarks": sorted(json.dumps(vars(lm), sort_keys=True, ensure_ascii=False, default=list)
                            for lm in landmarks.values()),
        "false_accept_rate": false_accept_rate,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


async def held_back_figures(
    bundle: IndexBundle, held_back: list[GalleryPhoto], store: PhotoStore, models: IndexModels,
    embeddings: EmbeddingCache | None, control: BuildControl | None = None, refresh: bool = False,
) -> tuple[dict, list[str]]:  # type: ignore[type-arg]
    """`bundle` measured on the held-back photos (embedded through the cache), and the photos that did not decode."""
    measured = await asyncio.to_thread(embed_photos, held_back, store, models, embeddings, control, refresh,
                                       "held_back")
    figures = await asyncio.to_thread(
        measure_held_back, bundle, models.embedder, models.matcher, [p.landmark_id for p in measured.photos],
        measured.vectors, measured.imagenet_logits, measured.local)
    return figures, measured.skipped


@dataclass
class IndexOutcome:
    """What a build did: the new bundle, or `unchanged` when the active index already matches the gallery."""

    bundle: IndexBundle | None
    unchanged: bool
    version: str
    n_photos: int
    n_landmarks: int
    embedded: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float | None = None
    stats: dict = field(default_factory=dict)


async def build_index(
    repos: Repositories, store: PhotoStore, models: IndexModels, index_root: Path,
    embeddings: EmbeddingCache | None = None, control: BuildControl | None = None,
    false_accept_rate: float | None = None, full: bool = False,
) -> IndexOutcome:
    """Embed the gallery, build and save a new version, activate it.

    Without `full`, photos come from the embedding cache where they can, and nothing is
    rebuilt when the active index was made from the same photos, names and models."""
    started = time.perf_counter()
    control = control or BuildControl()
    rate = MLSettings().open_set_false_accept_rate if false_accept_rate is None else false_accept_rate
    photos = await repos.gallery_photos()
    held_back = await repos.held_back_photos()
    rows = await repos.get_landmarks()
    with_photos = {p.landmark_id for p in photos}
    texts = {k: LandmarkText.from_row(v) for k, v in rows.items() if k in with_photos}  # search finds what it can show
    signature = content_signature(photos, texts, models, rate, held_back)
    active = await repos.active_index()
    if not full and active is not None and (active.stats or {}).get("content_signature") == signature:
        log.info("index.unchanged version=%s", active.version)
        return IndexOutcome(bundle=None, unchanged=True, version=active.version, n_photos=active.n_photos,
                            n_landmarks=active.n_landmarks, seconds=round(time.perf_counter() - started, 2),
                            stats=active.stats or {})
    landmarks = landmark_infos(rows)
    gallery = await asyncio.to_thread(
        embed_photos, photos, store, models, embeddings, control, full)  # full: re-embed, refresh the cache
    skipped, embedded = gallery.skipped, gallery.embedded
    t_embed = time.perf_counter() - started
    bundle = await asyncio.to_thread(build_bundle, gallery, landmarks, models.embedder, models.matcher, rate,
                                     control, models.expansion, models.whitening)
    if held_back:
        figures, held_back_skipped = await held_back_figures(bundle, held_back, store, models, embeddings, control,
                                                             full)
        bundle.stats.update(figures)
        skipped = [*skipped, *(f"held back {line}" for line in held_back_skipped)]
    control.report("text", 0, 1)
    bundle.text = await asyncio.to_thread(TextCorpus.build, list(texts.values()), models.text_encoders)
    control.report("text", 1, 1)
    bundle.stats.update({
        "content_signature": signature,
        "skipped_photos": skipped,
        "embedded_photos": embedded,
        "embed_seconds": round(t_embed, 2),
        "embed_images_per_second": round(len(photos) / t_embed, 2) if t_embed > 0 else None,
    })
    control.report("save", 0, 1)
    folder = await asyncio.to_thread(bundle.save, index_root)
    control.report("save", 1, 1)
    seconds = time.perf_counter() - started
    bundle.stats["total_seconds"] = round(seconds, 2)
    bundle.stats["images_per_second"] = round(len(photos) / seconds, 2) if seconds > 0 else None
    await repos.add_index_version(
        activate=True, version=bundle.version, path=str(folder), model=bundle.model_id,
        n_photos=len(bundle.photo_ids), n_landmarks=len(bundle.landmarks), stats=bundle.stats,
    )
    log.info("index.built version=%s photos=%d landmarks=%d embedded=%d skipped=%d seconds=%.1f", bundle.version,
             len(bundle.photo_ids), len(bundle.landmarks), embedded, len(skipped), seconds)
    return IndexOutcome(bundle=bundle, unchanged=False, version=bundle.version, n_photos=len(bundle.photo_ids),
                        n_landmarks=len(bundle.landmarks), embedded=embedded, skipped=skipped,
                        seconds=round(seconds, 2), images_per_second=bundle.stats["images_per_second"],
                        stats=bundle.stats)
