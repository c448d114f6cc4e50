"""`landmarks ...`: everything an operator does without Telegram."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from cli.logs import configure_logging
from cli.progress import progress_bar

if TYPE_CHECKING:
    from ml.evaluate import EvalReport
    from ml.resplit import PooledCalibration, Spread

app = typer.Typer(help="Landmark recognition bot: data, index, evaluation, worker and bot.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
log = logging.getLogger("landmarks")


@app.callback()
def _setup(log_level: str = typer.Option(None, help="Log level (default: LOG_LEVEL or INFO).")) -> None:
    configure_logging(log_level)


# -- database ---------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION."""
    from storage.migrate import upgrade

    upgrade(revision)
    console.print(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(...)) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from storage.migrate import downgrade

    downgrade(revision)
    console.print(f"database downgraded to {revision}")


# -- gallery ----------------------------------------------------------------------------------
async def _with_services(work):  # type: ignore[no-untyped-def]
    from storage.services import Services
    from storage.settings import StorageSettings

    services = Services.create(StorageSettings())
    try:
        return await work(services)
    finally:
        await services.close()


@app.command("import")
def import_cmd(folder: Path = typer.Argument(..., exists=True, file_okay=False),
               held_back: bool = typer.Option(False, "--held-back", help="Also store split.csv's query photos, held "
                                              "back: never indexed, recognised after each reindex to measure it."),
               ) -> None:
    """Import a dataset folder (images/<landmark_id>/..., landmarks.csv, optional split.csv)."""
    from storage.dataset_import import import_dataset
    from storage.migrate import upgrade

    upgrade()

    async def work(services):  # type: ignore[no-untyped-def]
        with progress_bar() as update:
            return await import_dataset(folder, services.repos, services.photos,
                                        roles={"gallery", "query"} if held_back else {"gallery"},
                                        progress=lambda d, t: update("import photos", d, t))

    report = asyncio.run(_with_services(work))
    console.print(f"landmarks: {report.landmarks_added} added, {report.landmarks_updated} updated; "
                  f"photos: {report.photos_added} added, {report.photos_skipped} already there, "
                  f"{len(report.photos_rejected or [])} rejected")
    for line in report.photos_rejected or []:
        console.print(f"  rejected {line}")


@app.command("reindex")
def reindex_cmd(full: bool = typer.Option(False, "--full", help="Embed every photo again, ignoring the cache.")) -> None:
    """Build and activate a new index version (as /reindex in the bot): only new photos are embedded."""
    from ml.reindex import run_locked
    from storage.migrate import upgrade
    from storage.reindex_state import acquire

    upgrade()

    async def work(services):  # type: ignore[no-untyped-def]
        models = _index_models()
        job_id = uuid.uuid4().hex
        if not await acquire(services.cache, job_id):
            return None
        with progress_bar() as update:
            seen: set[tuple[str, int]] = set()

            def show(state) -> None:  # type: ignore[no-untyped-def]
                if state.total and (state.stage, state.done) not in seen:
                    seen.add((state.stage, state.done))
                    update(REINDEX_STAGES.get(state.stage, state.stage), state.done, state.total)

            return await run_locked(services, models, job_id, full, on_state=show)

    state = asyncio.run(_with_services(work))
    if state is None:
        console.print("[red]a reindex is already running[/red] (started from the bot or another shell)")
        raise typer.Exit(1)
    if state.status == "unchanged":
        console.print(f"nothing new: index {state.version} already has every photo ({state.seconds} s)")
    elif state.status != "done":
        console.print(f"[red]reindex {state.status}[/red]: {state.error or ''} (the old index keeps serving)")
        raise typer.Exit(1)
    else:
        console.print(f"index {state.version}: {state.n_photos} photos, {state.n_landmarks} landmarks, "
                      f"{state.embedded} embedded, {state.images_per_second} images/s overall, {state.seconds} s")
        figures = state.figures
        console.print("gallery leave-one-out: " + _figures_line(figures, (
            ("P@1", "loo_p_at_1"), ("accepted", "loo_accepted"), ("unknowns rejected", "loo_unknown_rejection"))))
        if figures.get("held_back_photos"):
            console.print(f"held-back photos ({figures['held_back_photos']:.0f}): " + _figures_line(figures, (
                ("P@1", "held_back_p_at_1"), ("P@5", "held_back_p_at_5"),
                ("distractors rejected", "held_back_distractor_rejection"),
                ("landmarks wrongly rejected", "held_back_false_rejection"))))
        if state.single_photo_landmarks:
            names = ", ".join(state.single_photo_landmarks)
            console.print(f"landmarks with one gallery photo ({len(state.single_photo_landmarks)}; their answers "
                          f"come out less sure than they are right: add more photos of each): {names}")
    for skipped in state.skipped:
        console.print(f"[yellow]skipped[/yellow] {skipped}")


REINDEX_STAGES = {"embed": "embed photos", "calibrate": "calibrate", "held_back": "held-back photos",
                  "text": "text vectors", "save": "save"}


def _figures_line(figures: dict, labelled_keys: tuple[tuple[str, str], ...]) -> str:  # type: ignore[type-arg]
    """"P@1 0.978, accepted 0.950, ...": each figure to 3 decimals, n/a where there was nothing to count."""
    return ", ".join(f"{label} {'n/a' if figures.get(key) is None else format(figures[key], '.3f')}"
                     for label, key in labelled_keys)


def _text_encoders():  # type: ignore[no-untyped-def]
    from ml.text.encoders import encoders_from_settings

    return encoders_from_settings()


def _index_models():  # type: ignore[no-untyped-def]
    from ml.indexer import IndexModels

    return IndexModels.default()


app.command("index", help="Same as reindex.")(reindex_cmd)


@app.command("recognize")
def recognize_cmd(photos: list[Path] = typer.Argument(..., exists=True, dir_okay=False),
                  as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Recognise photos offline with the active index, as the bot would answer."""
    from ml.index.bundle import IndexBundle
    from ml.models.image_embedder import ImageEmbedder
    from ml.models.local_features import LocalFeatureMatcher, matcher_for
    from ml.recognize import Recognizer
    from storage.images import decode_image

    async def active(services):  # type: ignore[no-untyped-def]
        return await services.repos.active_index()

    row = asyncio.run(_with_services(active))
    if row is None:
        console.print("no index yet: run `landmarks import DIR` and `landmarks index`")
        raise typer.Exit(1)
    bundle = IndexBundle.load(Path(row.path))
    recognizer = Recognizer(ImageEmbedder(), matcher_for(bundle.local_model_id, LocalFeatureMatcher()), bundle)
    results = []
    for path in photos:
        result = recognizer.recognize(decode_image(path.read_bytes()))
        results.append({"photo": str(path), **result.model_dump(mode="json")})
        if not as_json:
            _print_result(path, result)
    if as_json:
        print(json.dumps(results, ensure_ascii=False, indent=1))


def _print_result(path: Path, result) -> None:  # type: ignore[no-untyped-def]
    verdict = "recognised" if result.recognized else "NOT recognised (uncertain candidates)"
    table = Table(title=f"{path.name}: {verdict}, {result.timings_ms.get('total', 0):.0f} ms")
    for column in ("#", "landmark", "city, country", "probability", "cosine", "inliers"):
        table.add_column(column)
    for rank, lm in enumerate(result.landmarks, start=1):
        table.add_row(str(rank), lm.name_en, ", ".join(p for p in (lm.city, lm.country) if p),
                      f"{100 * lm.probability:.1f}%", f"{lm.similarity:.3f}", str(lm.inliers))
    console.print(table)
    console.print("categories: " + ", ".join(f"{c.category} {100 * c.probability:.1f}%" for c in result.categories))


@app.command("search")
def search_cmd(text: str = typer.Argument(..., help="A landmark name in Russian or English, typos allowed."),
               limit: int = typer.Option(5, help="How many landmarks to list.")) -> None:
    """Find landmarks of the gallery by name, as /search in the bot ranks them."""
    from ml.text.search import LandmarkText, TextCorpus, TextSearch

    async def landmarks(services):  # type: ignore[no-untyped-def]
        return await services.repos.get_landmarks(), await services.repos.active_index()

    rows, active = asyncio.run(_with_services(landmarks))
    corpus = TextCorpus.load(Path(active.path)) if active else None  # the text vectors the worker serves
    search = TextSearch(corpus or [LandmarkText.from_row(row) for row in rows.values()], _text_encoders())
    hits = [hit for hit in search.search(text, limit) if hit.landmark_id in rows]
    table = Table(title=f"search: {text}")
    for column in ("#", "landmark", "name (ru)", "city", "score", "fuzzy", "semantic"):
        table.add_column(column)
    for rank, hit in enumerate(hits, start=1):
        row = rows[hit.landmark_id]
        table.add_row(str(rank), row.name_en, row.name_ru or "", row.city or "", f"{hit.score:.3f}",
                      f"{hit.fuzzy:.2f}", f"{hit.semantic:.2f}")
    console.print(table if hits else "nothing matches")


# -- evaluation -------------------------------------------------------------------------------
@app.command("eval")
def eval_cmd(folder: Path = typer.Argument(..., exists=True, file_okay=False),
             json_path: Path = typer.Option(None, "--json", help="Write the metrics as JSON here."),
             report_dir: Path = typer.Option(None, "--report", help="Write tables, curves and plots (PNG) here."),
             resplits: int = typer.Option(0, "--resplits", min=0, help="Also run N random re-splits of the same "
                                          "photos and print each bar's spread (about 30 s each on 2 cores)."),
             ) -> None:
    """Run the dataset's protocol (index its gallery, send every query) in a temporary store."""
    from ml.evaluate import evaluate
    from ml.report import (
        calibration_by_gallery_photos,
        per_landmark,
        reliability_diagram,
        reliability_title,
        save_figure,
        stage_costs,
        write_report,
    )

    with progress_bar() as update:
        report = asyncio.run(evaluate(folder, progress=update))
    metrics = report.metrics()
    spread, pooled = _resplit_spread(folder, report, resplits) if resplits else (None, None)
    table = Table(title=f"evaluation on {folder}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    if report.failures:
        console.print(f"{len(report.failures)} failures:")
        for failure in report.failures:
            console.print(f"  {json.dumps(failure, ensure_ascii=False)}")
    landmarks = Table(title="per landmark")
    for column in ("landmark", "queries", "top-1", "top-5", "rejected"):
        landmarks.add_column(column)
    for row in per_landmark(report.outcomes, report.names):
        landmarks.add_row(row["name"], str(row["queries"]), str(row["top1"]), str(row["top5"]), str(row["rejected"]))
    console.print(landmarks)
    _print_coverage_calibration("top-1 calibration by the named landmark's gallery photos",
                                calibration_by_gallery_photos(report.outcomes))
    console.print("cost per stage (ms, mean / p95): " + ", ".join(
        f"{stage} {cost['mean_ms']:.0f} / {cost['p95_ms']:.0f}" for stage, cost in stage_costs(report.outcomes).items()))
    if spread:
        table = Table(title=f"the same photos dealt again: {resplits} random re-splits (each landmark keeps its "
                            "number of gallery and query photos)")
        for column in ("metric", "dataset split", "mean", "sd", "min", "max"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for row in spread:
            table.add_row(row.figure, *(f"{v:.3f}" for v in (row.dataset_split, row.mean, row.sd, row.low, row.high)))
        console.print(table)
    if pooled is not None:
        table = Table(title=f"top-1 calibration pooled over the dataset split and the {resplits} re-splits "
                            f"({pooled.answers} answers): ECE {pooled.ece:.3f}, a calibrated model's by chance "
                            f"{pooled.ece_by_chance:.3f} (95th percentile {pooled.ece_by_chance_p95:.3f})")
        for column in ("top-1 probability", "answers", "mean probability", "share right"):
            table.add_column(column, justify="right")
        for row in pooled.bins:
            table.add_row(f"{row['low']:.1f}-{row['high']:.1f}", str(row["answers"]), f"{row['mean_confidence']:.3f}",
                          f"{row['share_right']:.3f}")
        console.print(table)
        _print_coverage_calibration("pooled top-1 calibration by the named landmark's gallery photos",
                                    pooled.by_gallery_photos)
    if json_path:
        saved = metrics
        if spread is not None and pooled is not None:
            saved = {**metrics, "resplits": [asdict(row) for row in spread],
                     "resplits_pooled_calibration": asdict(pooled)}
        json_path.write_text(json.dumps(saved, indent=2), encoding="utf-8")
    if report_dir:
        written = write_report(report_dir, folder, metrics, report.outcomes, report.names, report.threshold)
        if pooled is not None:
            title = reliability_title(f"pooled over {resplits + 1} splits ({pooled.answers} answers)", pooled.ece,
                                      pooled.ece_by_chance, pooled.ece_by_chance_p95)
            written.append(save_figure(reliability_diagram(pooled.bins, title), report_dir / "reliability_pooled.png"))
        console.print(f"report: {len(written)} files in {report_dir}")


def _print_coverage_calibration(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    for column in ("gallery photos", "answers", "mean probability", "share right"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["gallery_photos"], str(row["answers"]), f"{row['mean_confidence']:.3f}",
                      f"{row['share_right']:.3f}")
    console.print(table)


def _resplit_spread(folder: Path, report: EvalReport, count: int) -> tuple[list[Spread], PooledCalibration]:
    """Each figure's spread over `count` re-splits, and the top-1 calibration of all their answers with the
    dataset split's."""
    from ml.resplit import evaluate_resplits, pooled_calibration, spreads

    with progress_bar() as update:
        results = asyncio.run(evaluate_resplits(folder, count, progress=update))
    return (spreads(report.metrics(), [r.metrics() for r in results]),
            pooled_calibration([report.outcomes, *(r.outcomes for r in results)]))


COMPARE_HEADERS = {"landmark_p_at_1": "P@1", "landmark_p_at_5": "P@5", "gap": "GAP", "retrieval_recall_at_20": "R@20",
                   "category_p_at_1": "cat P@1", "category_p_at_1_unknown_place": "cat P@1 unseen",
                   "distractor_rejection": "distr. rej.",
                   "false_rejection": "false rej.", "ece": "ECE", "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms"}


@app.command("compare")
def compare_cmd(folder: Path = typer.Argument(..., exists=True, file_okay=False),
                variant: list[str] = typer.Option(None, help="Only these variants (default: all)."),
                json_path: Path = typer.Option(None, "--json", help="Write the table as JSON here.")) -> None:
    """Run the evaluation protocol once per recognition method and print quality against cost."""
    from ml.compare import VARIANTS, compare, row

    known = {v.name for v in VARIANTS}
    if variant and not set(variant) <= known:
        console.print(f"[red]unknown variant[/red]; known: {', '.join(sorted(known))}")
        raise typer.Exit(2)
    rows: dict[str, dict] = {}

    def show(done, report) -> None:  # type: ignore[no-untyped-def]
        rows[done.name] = row(report)
        console.print(f"{done.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[done.name].items()))

    asyncio.run(compare(folder, variant, on_done=show))
    table = Table(title=f"methods on {folder}")
    columns = list(next(iter(rows.values())))
    table.add_column("variant")
    for column in columns:
        table.add_column(COMPARE_HEADERS.get(column, column.removesuffix("_ms")), justify="right")
    for name, values in rows.items():
        table.add_row(name, *(f"{values[c]:.0f}" if c.endswith("_ms") or "latency" in c else f"{values[c]:.3f}"
                              for c in columns))
    Console(width=max(console.width, 160)).print(table)
    if json_path:
        json_path.write_text(json.dumps(rows, indent=2), encoding="utf-8")


@app.command("bench-search")
def bench_search_cmd(folder: Path = typer.Argument(..., exists=True, file_okay=False),
                     repeats: int = typer.Option(5, help="How many times each text query is searched.")) -> None:
    """Print text-search latency (p50/p95) over the dataset's text queries: inside the worker, then through
    the queue against the active index (a worker in this process on the embedded defaults)."""
    from ml.bench import bench_search_round_trip, bench_text_search, read_text_queries
    from storage.migrate import upgrade

    def show(title: str, figures: dict) -> None:  # type: ignore[type-arg]
        console.print(f"{title}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in figures.items()))

    show("search in the worker", bench_text_search(folder, repeats))
    upgrade()

    async def round_trip(services):  # type: ignore[no-untyped-def]
        if await services.repos.active_index() is None:
            return None
        return await bench_search_round_trip(services, read_text_queries(folder), repeats)

    figures = asyncio.run(_with_services(round_trip))
    if figures is None:
        console.print("no active index: run `landmarks seed` (or import + reindex) for the round trip through the queue")
    else:
        show("search job through the queue", figures)


# -- processes --------------------------------------------------------------------------------
def _stop_on_signals(stop) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


@app.command("worker")
def worker_cmd() -> None:
    """Run one ML worker against the shared queue (needs REDIS_URL to serve a separate bot)."""
    from ml.worker import Worker
    from storage.services import Services
    from storage.settings import StorageSettings

    async def main() -> None:
        services = Services.create(StorageSettings())
        worker = Worker(services)
        _stop_on_signals(worker.stop)
        try:
            await worker.run()
        finally:
            await services.close()

    asyncio.run(main())


@app.command("bot")
def bot_cmd() -> None:
    """Run the Telegram bot alone (workers run separately; needs REDIS_URL)."""
    from storage.settings import StorageSettings

    if not StorageSettings().redis_url:
        console.print("`landmarks bot` alone needs REDIS_URL to reach workers; use `landmarks run` for one process")
        raise typer.Exit(2)
    asyncio.run(_serve(with_worker=False))


@app.command("run")
def run_cmd(seed: bool = typer.Option(True, help="Import and index SEED_DATASET when the gallery is empty.")) -> None:
    """Migrate, seed an empty gallery, then serve: bot + in-process worker, or bot + worker processes with Redis."""
    from bot.settings import BotSettings
    from storage.migrate import upgrade

    if BotSettings().bot_token is None:
        console.print(
            "BOT_TOKEN is not set. Create a bot with @BotFather in Telegram (/newbot), then put the token in .env:\n"
            "  BOT_TOKEN=123456:ABC...\n"
            "To use a local Bot API server (telegram-bot-api) instead of api.telegram.org, also set\n"
            "  TELEGRAM_API_URL=http://127.0.0.1:8081"
        )
        raise typer.Exit(2)
    upgrade()
    if seed:
        _seed_if_empty()
    asyncio.run(_serve(with_worker=True))


@app.command("seed")
def seed_cmd() -> None:
    """Apply migrations; import and index SEED_DATASET if the gallery is empty; build an index if none is active."""
    from storage.migrate import upgrade

    upgrade()
    _seed_if_empty()


def _seed_if_empty() -> None:
    from storage.settings import StorageSettings

    dataset = os.environ.get("SEED_DATASET") or str(Path("../shared/datasets/landmarks-dev"))

    async def counts(services):  # type: ignore[no-untyped-def]
        return await services.repos.count_gallery(), await services.repos.active_index()

    (n_photos, _), active = asyncio.run(_with_services(counts))
    if n_photos == 0 and Path(dataset).is_dir():
        console.print(f"gallery is empty: importing {dataset}")
        import_cmd(Path(dataset), held_back=False)  # called directly: typer defaults are not applied
        n_photos = 1
    if n_photos and active is None:
        reindex_cmd(full=False)
    StorageSettings().ensure_dirs()


async def _serve(with_worker: bool) -> None:
    """Embedded mode runs the worker in this process; with Redis it starts worker processes."""
    from bot.app import run_polling
    from bot.settings import BotSettings
    from storage.services import Services
    from storage.settings import StorageSettings

    storage_settings = StorageSettings()
    services = Services.create(storage_settings)
    children: list[asyncio.subprocess.Process] = []
    tasks: list[asyncio.Task] = []
    stop = asyncio.Event()
    _stop_on_signals(stop.set)
    try:
        if with_worker and storage_settings.redis_url:
            for _ in range(int(os.environ.get("WORKERS", "1"))):
                children.append(await asyncio.create_subprocess_exec(sys.executable, "-m", "cli", "worker"))
        elif with_worker:
            from ml.worker import Worker

            worker = Worker(services)
            tasks.append(asyncio.create_task(worker.run(), name="worker"))
        tasks.append(asyncio.create_task(run_polling(services, BotSettings()), name="bot"))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception():
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for child in children:
            child.terminate()
        for child in children:
            await child.wait()
        await services.close()


def main() -> None:
    app()
