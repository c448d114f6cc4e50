"""The evaluation protocol of `../shared/datasets/README.md`, on a private temporary store.

Index the dataset's gallery photos, send every query photo through the same Recognizer the
worker uses, and count. It never touches the live gallery: a fresh DATA_DIR and SQLite
file are made for the run and removed afterwards.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.fusion import probabilities
from ml.index.bundle import IndexBundle
from ml.index.embedding_cache import EmbeddingCache
from ml.indexer import BuildControl, IndexModels, build_index
from ml.metrics import (
    calibration_error_by_chance,
    expected_calibration_error,
    global_average_precision,
    map_at_k,
    precision_at_k,
    rejected_share,
)
from ml.models.heads import train_linear_head
from ml.models.image_embedder import Embedding
from ml.models.place_categories import place_category_proba
from ml.recognize import QueryEvidence, Recognizer, evidence_without_landmark
from ml.report import top1_calibration
from ml.text.search import TextSearch
from storage.dataset_import import SplitPhoto, import_dataset, list_photos
from storage.db import create_engine, create_session_factory
from storage.images import decode_image
from storage.migrate import upgrade_async
from storage.photo_store import PhotoStore
from storage.repositories import Repositories
from storage.schemas import CATEGORIES
from storage.settings import StorageSettings

RECALL_DEPTH = 20


@dataclass
class EvalReport:
    landmark_p_at_1: float
    landmark_p_at_5: float
    landmark_map_at_5: float
    gap: float
    retrieval_recall_at_20: float
    category_p_at_1: float
    category_p_at_5: float
    distractor_rejection: float
    false_rejection: float
    ece: float
    n_landmark_queries: int
    n_distractor_queries: int
    latency_ms_p50: float
    latency_ms_p95: float
    index_seconds: float
    category_p_at_1_unknown_place: float | None = None  # the place's landmark left out of the gallery
    category_p_at_5_unknown_place: float | None = None
    # Open set beyond the distractors: landmark queries rejected when their landmark is left out of the gallery
    # (a real building the bot does not know, the calibration's "left-out landmark" unknowns).
    unknown_landmark_rejection: float | None = None
    fusion_temperature: float | None = None  # fitted on the gallery, out of sample
    # The ECE a perfectly calibrated model would show on these same confidences (mean, 95th percentile of draws):
    # what `ece` is read against on a few dozen queries.
    ece_by_chance: float | None = None
    ece_by_chance_p95: float | None = None
    text_hit_at_1: float | None = None
    text_hit_at_5: float | None = None
    text_mrr: float | None = None
    failures: list[dict] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)  # one per query, for the report folder
    threshold: float | None = None  # the "not recognised" threshold the index chose on its gallery
    names: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict:
        out = asdict(self)
        for detail in ("failures", "outcomes", "threshold", "names"):
            out.pop(detail)
        return {k: v for k, v in out.items() if v is not None}


async def evaluate(folder: Path, progress: Callable[[str, int, int], None] | None = None,
                   models: IndexModels | None = None, split: list[SplitPhoto] | None = None,
                   embeddings: EmbeddingCache | None = None) -> EvalReport:
    """`split` deals the roles instead of the folder's split.csv; `embeddings` lets several runs share the
    gallery's embeddings."""
    if split is None and not (folder / "split.csv").exists():
        raise FileNotFoundError(f"{folder / 'split.csv'}: the evaluation needs the dataset's split of gallery and queries")
    photos = list_photos(folder, {"query"}) if split is None else split
    queries = [(p.image, p.landmark_id) for p in photos if p.role == "query"]
    with tempfile.TemporaryDirectory(prefix="landmarks-eval-") as tmp:
        settings = StorageSettings(data_dir=Path(tmp), database_url=None, redis_url=None)
        settings.ensure_dirs()
        await upgrade_async(database_url=settings.resolved_database_url)
        engine = create_engine(settings)
        try:
            repos = Repositories(create_session_factory(engine))
            store = PhotoStore(settings.photos_dir)
            await import_dataset(folder, repos, store, split=split,
                                 progress=(lambda d, t: progress("import", d, t)) if progress else None)
            models = models or IndexModels.default()
            started = time.perf_counter()
            outcome = await build_index(repos, store, models, settings.index_dir, embeddings=embeddings,
                                        control=BuildControl(progress=progress))
            index_seconds = time.perf_counter() - started
            landmarks = await repos.get_landmarks()
        finally:
            await engine.dispose()
        bundle = IndexBundle.load(settings.index_dir / outcome.version)
        recognizer = Recognizer(models.embedder, models.matcher, bundle)
        report = _score(folder, queries, recognizer, {k: v.category for k, v in landmarks.items()}, index_seconds,
                        progress)
        text_queries = folder / "text_queries.csv"
        if text_queries.exists():
            search = TextSearch(bundle.text, models.text_encoders)  # the text vectors the index stored
            report.text_hit_at_1, report.text_hit_at_5, report.text_mrr = _score_text(text_queries, search)
        return report


def _score_text(path: Path, search: TextSearch) -> tuple[float, float, float]:
    """hit@1, hit@5 and MRR (within the top 5) of the text queries."""
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    ranked = [[hit.landmark_id for hit in search.search(row["query"], 5)] for row in rows]
    truth = [row["landmark_id"] for row in rows]
    return precision_at_k(ranked, truth, 1), precision_at_k(ranked, truth, 5), map_at_k(ranked, truth, 5)


def _score(folder: Path, queries: list[tuple[str, str | None]], recognizer: Recognizer,
           categories: dict[str, str], index_seconds: float,
           progress: Callable[[str, int, int], None] | None) -> EvalReport:
    truth: list[str | None] = []
    ranked: list[list[str]] = []
    retrieved: list[list[str]] = []
    category_ranked: list[list[str]] = []
    top_probability: list[float] = []
    recognised: list[bool] = []
    latencies, failures, outcomes = [], [], []
    embeddings: list[Embedding | None] = []
    asked_again: list[tuple[str, QueryEvidence]] = []  # landmark queries, to ask again with their landmark left out
    bundle = recognizer.bundle
    for done, (relative, expected) in enumerate(queries, start=1):
        image = decode_image((folder / relative).read_bytes())
        started = time.perf_counter()
        result, found = recognizer.explain(image)
        latencies.append(1000 * (time.perf_counter() - started))
        got = [lm.landmark_id for lm in result.landmarks]
        embeddings.append(found.embedding)
        if expected is not None and expected in found.classes:
            asked_again.append((expected, found))
        truth.append(expected)
        ranked.append(got)
        retrieved.append([bundle.row_landmarks[row] for row in found.ranked_rows[:RECALL_DEPTH]])
        category_ranked.append([c.category for c in result.categories])
        top_probability.append(result.landmarks[0].probability if result.landmarks else 0.0)
        recognised.append(result.recognized)
        outcomes.append({
            "query": relative, "expected": expected, "got": got[:5],
            "probabilities": [round(lm.probability, 4) for lm in result.landmarks[:5]],
            "inliers": [lm.inliers for lm in result.landmarks[:5]], "recognized": result.recognized,
            "top_probability": top_probability[-1],
            "top_gallery_photos": int(bundle.photos_per_landmark[found.classes.index(got[0])]) if got else None,
            "category_expected": categories.get(expected) if expected else None,
            "category_got": result.categories[0].category if result.categories else None,
            "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
        })
        if (expected is None) == result.recognized or (expected is not None and got[:1] != [expected]):
            failures.append({"query": relative, "expected": expected, "got": got[:3],
                             "probabilities": [round(lm.probability, 3) for lm in result.landmarks[:3]],
                             "inliers": [lm.inliers for lm in result.landmarks[:3]],
                             "recognized": result.recognized})
        if progress:
            progress("query", done, len(queries))
    known = [i for i, t in enumerate(truth) if t is not None]
    unknown = [i for i, t in enumerate(truth) if t is None]
    known_truth = [truth[i] for i in known]
    known_categories = [categories.get(t, "other") for t in known_truth]
    # After the timed loop, so that this extra search and verification cannot slow the next photo's answer.
    unknown_landmark_top = [_top_probability_without(recognizer, landmark, found) for landmark, found in asked_again]
    confidence, top_1_right = top1_calibration(outcomes)
    ece_by_chance, ece_by_chance_p95 = calibration_error_by_chance(confidence)
    unknown_place_ranked = _unknown_place_categories(bundle, [truth[i] for i in known], [embeddings[i] for i in known])
    return EvalReport(
        landmark_p_at_1=precision_at_k([ranked[i] for i in known], known_truth, 1),
        landmark_p_at_5=precision_at_k([ranked[i] for i in known], known_truth, 5),
        landmark_map_at_5=map_at_k([ranked[i] for i in known], known_truth, 5),
        gap=global_average_precision([r[0] if ok and r else None for r, ok in zip(ranked, recognised)],
                                     top_probability, truth),
        retrieval_recall_at_20=precision_at_k([retrieved[i] for i in known], known_truth, RECALL_DEPTH),
        category_p_at_1=precision_at_k([category_ranked[i] for i in known], known_categories, 1),
        category_p_at_5=precision_at_k([category_ranked[i] for i in known], known_categories, 5),
        category_p_at_1_unknown_place=precision_at_k(unknown_place_ranked, known_categories, 1),
        category_p_at_5_unknown_place=precision_at_k(unknown_place_ranked, known_categories, 5),
        distractor_rejection=rejected_share([recognised[i] for i in unknown]) or 0.0,  # the report's keys are numbers
        false_rejection=rejected_share([recognised[i] for i in known]) or 0.0,
        unknown_landmark_rejection=rejected_share([p >= bundle.fusion.threshold for p in unknown_landmark_top]),
        ece=expected_calibration_error(confidence, top_1_right),
        ece_by_chance=ece_by_chance,
        ece_by_chance_p95=ece_by_chance_p95,
        n_landmark_queries=len(known),
        n_distractor_queries=len(unknown),
        latency_ms_p50=float(np.percentile(latencies, 50)) if latencies else 0.0,
        latency_ms_p95=float(np.percentile(latencies, 95)) if latencies else 0.0,
        index_seconds=index_seconds,
        failures=failures,
        outcomes=outcomes,
        threshold=bundle.fusion.threshold,
        fusion_temperature=bundle.fusion.temperature,
        names={k: v.name_en for k, v in bundle.landmarks.items()},
    )


def _top_probability_without(recognizer: Recognizer, landmark_id: str, found: QueryEvidence) -> float:
    """The top-1 probability of the same photo had the gallery never held `landmark_id`, as the calibration
    asks a landmark it leaves out: any landmark it names is wrong."""
    bundle = recognizer.bundle
    assert found.embedding is not None and found.local is not None
    head = bundle.landmark_head.log_proba(found.embedding.vector[None, :])[0]
    evidence = evidence_without_landmark(bundle, recognizer.matcher, found.embedding.vector, found.local,
                                         landmark_id, head)
    p_landmarks, _ = probabilities(evidence, bundle.fusion)
    return float(p_landmarks.max()) if len(p_landmarks) else 0.0


def _unknown_place_categories(bundle: IndexBundle, truth: list[str],
                              embeddings: list[Embedding | None]) -> list[list[str]]:
    """Categories ranked for each landmark query as if its landmark were not in the gallery.

    The category head is retrained without that landmark's photos (milliseconds), which is
    what the bot has to go on for a church it has never seen."""
    vectors = bundle.gallery_matrix
    row_categories = [bundle.landmarks[label].category for label in bundle.row_landmarks]
    heads = {}
    ranked = []
    for landmark, embedding in zip(truth, embeddings):
        if landmark not in heads:
            rows = [i for i, label in enumerate(bundle.row_landmarks) if label != landmark]
            heads[landmark] = train_linear_head(vectors[rows], [row_categories[i] for i in rows]) if rows else None
        if embedding is None or heads[landmark] is None:
            ranked.append([])
            continue
        p = place_category_proba(heads[landmark], bundle.place_weights, embedding.vector,
                                 embedding.imagenet_logits)
        ranked.append([CATEGORIES[i] for i in np.argsort(-p)[:5]])
    return ranked
