"""The ``rich`` side of the display: its console and the live progress bar.

Imported by :class:`~chainscan.run._display.Display` only when it first writes a line or starts
the bar, never with it: importing rich costs about 30 ms of CPU, and a quiet run (``-q``, the
usual way scripts and benchmarks run chainscan) with nothing to warn about writes nothing.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["make_console", "make_progress"]


class _Remaining(TimeRemainingColumn):
    """rich's ETA, except at the end of a scan: when no more targets remain than may be in
    flight at once, each of them ends by its deadline, so ``<= Ns`` is what can be promised."""

    def __init__(self, in_flight: int | None, deadline: float | None) -> None:
        super().__init__()
        self._in_flight = in_flight
        self._deadline = deadline

    def render(self, task: Task) -> Text:
        remaining = task.remaining
        if (
            self._in_flight is not None
            and self._deadline is not None
            and remaining is not None
            and 0 < remaining <= self._in_flight
        ):
            return Text(f"<= {self._deadline:g}s", style="progress.remaining")
        return super().render(task)


def make_console(stream: TextIO, *, color: bool) -> Console:
    # rich also leaves colour out when NO_COLOR is set, or the stream is not a terminal
    return Console(
        file=stream,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        no_color=None if color else True,  # None: rich reads NO_COLOR itself
    )


def make_progress(console: Console, in_flight: int | None, deadline: float | None) -> Progress:
    return Progress(
        TextColumn("[bold]chainscan"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "ok [green]{task.fields[ok]}[/] failed [red]{task.fields[failed]}[/]"
            " invalid {task.fields[invalid]}"
        ),
        TextColumn("{task.fields[rate]}/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        _Remaining(in_flight, deadline),
        console=console,
        transient=True,
    )
