"""Compare recognition methods on a dataset with the evaluation protocol: quality against cost.

Each variant is a set of model settings (backbone and its input size, GeM power, scales,
local-feature image size and keypoint count, query expansion, database augmentation, PCA
whitening); each runs the whole protocol of `ml.evaluate` in its own temporary store, so the
figures are those `landmarks eval` would print had it been the default. The defaults of
`EmbedderConfig`, `LocalFeatureConfig`, `ExpansionConfig` and `IndexModels` are the variant that won.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ml.evaluate import EvalReport, evaluate
from ml.index.expansion import ExpansionConfig
from ml.indexer import IndexModels
from ml.models.image_embedder import EmbedderConfig, ImageEmbedder
from ml.models.local_features import LocalFeatureConfig, LocalFeatureMatcher
from ml.report import stage_costs
from ml.text.encoders import encoders_from_settings


@dataclass(frozen=True)
class Variant:
    name: str
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    local: LocalFeatureConfig = field(default_factory=LocalFeatureConfig)
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)
    whitening: bool = True


VARIANTS: tuple[Variant, ...] = (
    Variant("default"),
    Variant("no-whitening", whitening=False),
    Variant("gem-p4", embedder=EmbedderConfig(gem_p=4.0)),
    Variant("global-320", embedder=EmbedderConfig(short_side=320, max_long_side=544)),
    Variant("xfeat-640px", local=LocalFeatureConfig(max_side=640)),
    # The default until the keypoint pass got faster (see LocalFeatureConfig.max_side): same latency, more
    # false rejections.
    Variant("xfeat-800px", local=LocalFeatureConfig(max_side=800)),
    Variant("xfeat-1024kp", local=LocalFeatureConfig(top_k=1024, gallery_top_k=1024)),
    Variant("xfeat-gallery-2048kp", local=LocalFeatureConfig(gallery_top_k=2048)),
    Variant("no-lighterglue", local=LocalFeatureConfig(glue_candidates=0)),
    Variant("global-320+xfeat-640px", embedder=EmbedderConfig(short_side=320, max_long_side=544),
            local=LocalFeatureConfig(max_side=640)),
    Variant("multi-scale-0.7-1-1.4", embedder=EmbedderConfig(scales=(0.7, 1.0, 1.4))),
    Variant("lite2", embedder=EmbedderConfig(backbone="tf_efficientnet_lite2")),
    Variant("aqe-2", expansion=ExpansionConfig(query_k=2)),
    Variant("dba-2", expansion=ExpansionConfig(database_k=2)),
    Variant("dba-2+aqe-2", expansion=ExpansionConfig(query_k=2, database_k=2)),
)

COLUMNS = ("landmark_p_at_1", "landmark_p_at_5", "gap", "retrieval_recall_at_20", "category_p_at_1",
           "category_p_at_1_unknown_place", "distractor_rejection", "false_rejection", "ece", "latency_ms_p50",
           "latency_ms_p95")


async def compare(folder: Path, names: list[str] | None = None,
                  on_done: Callable[[Variant, EvalReport], None] | None = None) -> list[tuple[Variant, EvalReport]]:
    chosen = [v for v in VARIANTS if not names or v.name in names]
    encoders = encoders_from_settings()
    results = []
    for variant in chosen:
        models = IndexModels(ImageEmbedder(variant.embedder), LocalFeatureMatcher(variant.local), encoders,
                             variant.expansion, variant.whitening)
        report = await evaluate(folder, models=models)
        results.append((variant, report))
        if on_done:
            on_done(variant, report)
    return results


def row(report: EvalReport) -> dict[str, float]:
    metrics = report.metrics()
    costs = stage_costs(report.outcomes)
    return {**{key: metrics[key] for key in COLUMNS},
            **{f"{stage}_ms": cost["mean_ms"] for stage, cost in costs.items() if stage != "total"}}
