"""Progress bars for long operator commands (rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """Yields `update(stage, done, total)`; one bar per stage.

    Stages run one after another, so a new stage closes the bars before it: updates may come from a
    periodic state (the reindex heartbeat) that never reports a stage's last step."""
    tasks: dict[str, TaskID] = {}
    totals: dict[TaskID, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=False) as progress:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                for task in tasks.values():
                    progress.update(task, completed=totals[task])
                    progress.stop_task(task)
                tasks[stage] = progress.add_task(stage, total=total)
            totals[tasks[stage]] = total
            progress.update(tasks[stage], completed=done, total=total)

        yield update
