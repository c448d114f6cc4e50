"""The evaluation report: tables and curves computed right on a hand-made example, and every file written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from ml.report import (
    calibration_by_gallery_photos,
    open_set_curve,
    per_landmark,
    precision_recall,
    worst_answers,
    write_report,
)


def _outcome(query: str, expected: str | None, got: list[str], p: float, recognized: bool) -> dict:
    return {"query": query, "expected": expected, "got": got, "probabilities": [p, 0.1, 0.05][: len(got)],
            "inliers": [100, 10, 5][: len(got)], "recognized": recognized, "top_probability": p,
            "category_expected": "church" if expected else None, "category_got": "church",
            "timings_ms": {"embed": 100.0, "total": 300.0}}


OUTCOMES = [
    _outcome("q/a1.png", "a", ["a", "b", "c"], 0.9, True),
    _outcome("q/a2.png", "a", ["b", "a", "c"], 0.6, True),  # wrong top-1, right in the top 5
    _outcome("q/b1.png", "b", ["b", "a", "c"], 0.3, False),  # right but rejected
    _outcome("q/x1.png", None, ["c", "a", "b"], 0.2, False),  # distractor rejected
    _outcome("q/x2.png", None, ["a", "b", "c"], 0.7, True),  # distractor accepted
]


def test_per_landmark_counts() -> None:
    rows = {row["landmark"]: row for row in per_landmark(OUTCOMES, {"a": "Alpha", "b": "Beta"})}
    assert rows["a"] == {"landmark": "a", "name": "Alpha", "queries": 2, "top1": 1, "top5": 2, "rejected": 0,
                         "p_at_1": 0.5}
    assert rows["b"]["rejected"] == 1 and set(rows) == {"a", "b"}


def test_calibration_by_gallery_photos_groups_answers_by_the_named_landmarks_coverage() -> None:
    photos = {"a": 5, "b": 1, "c": 2}  # gallery photos per landmark
    outcomes = [{**o, "top_gallery_photos": photos[o["got"][0]]} for o in OUTCOMES]
    outcomes.append({**OUTCOMES[0], "top_gallery_photos": None})  # no landmark named: left out
    rows = {row["gallery_photos"]: row for row in calibration_by_gallery_photos(outcomes)}
    assert list(rows) == ["1", "2", "3+"]
    # "a" is named by a1 (right, 0.9) and x2 (a distractor, 0.7); "b" by a2 (wrong, 0.6) and b1 (right, 0.3).
    assert rows["3+"] == {"gallery_photos": "3+", "answers": 2, "mean_confidence": 0.8, "share_right": 0.5}
    assert (rows["1"]["answers"], rows["1"]["share_right"]) == (2, 0.5)
    assert rows["1"]["mean_confidence"] == pytest.approx(0.45)
    assert rows["2"] == {"gallery_photos": "2", "answers": 1, "mean_confidence": 0.2, "share_right": 0.0}


def test_open_set_curve_runs_from_accepting_all_to_rejecting_all() -> None:
    curve = open_set_curve(OUTCOMES)
    assert curve[0] == {"threshold": 0.0, "distractor_rejection": 0.0, "false_rejection": 0.0}
    assert curve[-1]["distractor_rejection"] == 1.0 and curve[-1]["false_rejection"] == 1.0
    at_half = next(p for p in curve if p["threshold"] == 0.6)
    assert at_half["distractor_rejection"] == 0.5 and at_half["false_rejection"] == 1 / 3


def test_precision_recall_counts_only_recognised_correct_answers() -> None:
    precision, recall = precision_recall(OUTCOMES)
    # by confidence: a1 (hit), x2 (miss), a2 (miss), b1 (not recognised), x1
    assert list(precision) == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert recall[-1] == 1 / 3


def test_report_folder_has_tables_plots_and_contact_sheet(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    for relative, colour in [("q/a1.png", "red"), ("q/a2.png", "red"), ("q/b1.png", "blue"), ("q/x1.png", "grey"),
                             ("q/x2.png", "grey"), ("g/a.png", "red"), ("g/b.png", "blue"), ("g/c.png", "green")]:
        (dataset / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), colour).save(dataset / relative)
    with open(dataset / "split.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "landmark_id", "role"])
        writer.writerows([["g/a.png", "a", "gallery"], ["g/b.png", "b", "gallery"], ["g/c.png", "c", "gallery"]])
    metrics = {"gap": 0.33, "ece": 0.2, "false_rejection": 1 / 3, "distractor_rejection": 0.5}
    written = write_report(tmp_path / "report", dataset, metrics, OUTCOMES, {"a": "Alpha", "b": "Beta", "c": "Gamma"},
                           threshold=0.5)
    names = {path.name for path in written}
    assert {"curves.png", "reliability.png", "per_landmark.png", "category_confusion.png", "worst_failures.png",
            "per_landmark.csv", "open_set_curve.csv", "failures.json", "metrics.json"} <= names
    assert all(path.stat().st_size > 0 for path in written)
    with Image.open(tmp_path / "report" / "worst_failures.png") as sheet:
        assert sheet.height > 5 * 220  # three failures (a2, b1, x2), then the two close calls


def test_worst_answers_are_failures_by_confidence_then_close_calls_by_distance_from_the_threshold() -> None:
    order = [o["query"] for o in worst_answers(OUTCOMES, threshold=0.5)]
    assert order == ["q/x2.png", "q/a2.png", "q/b1.png", "q/x1.png", "q/a1.png"]  # x1 is 0.3 from it, a1 0.4
    assert [o["query"] for o in worst_answers(OUTCOMES, threshold=0.85, limit=4)][3] == "q/a1.png"


def test_a_split_without_failures_still_gets_a_contact_sheet(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "q").mkdir(parents=True)
    Image.new("RGB", (64, 48), "red").save(dataset / "q" / "a1.png")
    (dataset / "split.csv").write_text("image,landmark_id,role\n", encoding="utf-8")
    right = [o for o in OUTCOMES if o["query"] == "q/a1.png"]
    write_report(tmp_path / "report", dataset, {"gap": 1.0, "ece": 0.1, "false_rejection": 0.0,
                                                "distractor_rejection": 1.0}, right, {"a": "Alpha"}, threshold=0.5)
    with Image.open(tmp_path / "report" / "worst_failures.png") as sheet:
        assert 220 < sheet.height < 2 * 220
