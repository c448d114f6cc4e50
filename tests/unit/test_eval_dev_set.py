"""`landmarks eval` on the dev set: the issue's bars, read from the command's own JSON."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIGURES

ROOT = Path(__file__).resolve().parents[2]


def test_eval_meets_the_bars(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    report = tmp_path / "report"
    subprocess.run([sys.executable, "-m", "cli", "eval", str(dataset), "--json", str(out), "--report", str(report),
                    "--resplits", "1"], cwd=ROOT, check=True, timeout=1800)
    metrics = json.loads(out.read_text())
    pooled = metrics.pop("resplits_pooled_calibration")
    metrics.pop("resplits")
    FIGURES.append("landmarks eval (dev set): " + ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))
    FIGURES.append(f"top-1 calibration pooled over the dev split and 1 re-split ({pooled['answers']} answers): "
                   f"ECE {pooled['ece']:.3f}, by chance {pooled['ece_by_chance']:.3f}")
    with open(dataset / "split.csv", encoding="utf-8") as handle:
        queries = [r for r in csv.DictReader(handle) if r["role"] == "query"]
    # The pool holds every answer of both splits, binned as the ECE bins them.
    assert pooled["answers"] == 2 * len(queries) == sum(row["answers"] for row in pooled["bins"])
    assert (report / "reliability_pooled.png").stat().st_size > 0
    # Every answer names a landmark, so the split by its gallery photos holds them all too.
    assert sum(row["answers"] for row in pooled["by_gallery_photos"]) == pooled["answers"]
    FIGURES.append("pooled top-1 calibration by the named landmark's gallery photos: " + "; ".join(
        f"{row['gallery_photos']}: {row['answers']} answers said {row['mean_confidence']:.3f}, right "
        f"{row['share_right']:.3f}" for row in pooled["by_gallery_photos"]))
    assert metrics["n_landmark_queries"] == sum(1 for r in queries if r["landmark_id"])
    assert metrics["n_distractor_queries"] == sum(1 for r in queries if not r["landmark_id"])
    for key in ("landmark_map_at_5", "gap", "category_p_at_5", "ece", "retrieval_recall_at_20",
                "category_p_at_1_unknown_place", "fusion_temperature", "ece_by_chance", "ece_by_chance_p95",
                "unknown_landmark_rejection"):
        assert key in metrics, key
    # The recognition issue's bars. The ECE's is met on the dev split (0.030, 0.027 by chance on its confidences), but
    # the dev split's luck is part of it: over 7 re-splits of the same photos the ECE averages 0.064 (0.028-0.084).
    assert metrics["landmark_p_at_1"] >= 0.95
    assert metrics["landmark_p_at_5"] >= 0.99
    assert metrics["gap"] >= 0.90
    assert metrics["category_p_at_1"] >= 0.95
    assert metrics["distractor_rejection"] >= 0.90
    assert metrics["false_rejection"] <= 0.05
    assert metrics["ece"] <= 0.05
    assert metrics["text_hit_at_1"] >= 0.90
    assert metrics["text_hit_at_5"] >= 0.97
