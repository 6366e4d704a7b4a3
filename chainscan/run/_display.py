"""What a person sees on stderr: bad-line messages, live progress, the final summary.

Progress is drawn with ``rich`` only when stderr is a terminal and ``-q`` was not given; when
stderr is a pipe or a file (CI logs, cron) nothing but warnings, bad lines and the summary is
written, one plain line each.

Everything written here goes through :func:`chainscan._untrusted.terminal_safe` (one line per
message: newlines are escaped too), because messages quote input lines, file names and
whatever a server sent. The rich console is built with ``emoji=False`` (so a host name
holding ``:warning:`` is not turned into a picture) and otherwise reads the environment as rich
does: ``NO_COLOR`` drops the progress bar's colours, ``TERM=dumb`` its animation. rich itself
(``_progress``) is imported on the first line written or bar started: a quiet run that has
nothing to say never imports it (about 30 ms of CPU per scanning process).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from .._models import BadLine, ScanResult, Status
from .._untrusted import terminal_safe

if TYPE_CHECKING:  # rich is imported on the first line written or bar started (``_progress``)
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["Display"]

MAX_BAD_LINES_SHOWN = 100


class Display:
    """Counts results and tells the user about them."""

    def __init__(
        self, *, quiet: bool = False, stream: TextIO | None = None, color: bool = True
    ) -> None:
        self._stream = stream or sys.stderr
        self.quiet = quiet
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self._bad_shown = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._color = color
        self._rich: Console | None = None

    @property
    def _console(self) -> Console:
        """rich's console on our stream, made (and rich imported) when first needed."""
        if self._rich is None:
            from ._progress import make_console

            self._rich = make_console(self._stream, color=self._color)
        return self._rich

    @property
    def live(self) -> bool:
        return self._progress is not None

    def start(
        self, total: int | None, *, in_flight: int | None = None, deadline: float | None = None
    ) -> None:
        """Begin the live progress bar (terminals only).

        ``total``: targets and bad lines expected (``scan._inputs.count_targets``), None if
        unknown. ``in_flight`` (the concurrency) and ``deadline`` (per target) bound the end:
        once every remaining target may already be in flight, the rate says nothing about when
        the slowest (a tarpit) ends, so the ETA shows the deadline that bounds it instead.
        """
        if self.quiet or not self._stream.isatty():
            return
        from ._progress import make_progress

        self._progress = make_progress(self._console, in_flight, deadline)
        self._task = self._progress.add_task(
            "scan", total=total, ok=0, failed=0, invalid=0, rate="0"
        )
        self._progress.start()

    def _line(self, text: str) -> None:
        self._console.print(terminal_safe(text), markup=False)

    def warn(self, message: str) -> None:
        self._line(f"chainscan: warning: {message}")

    def error(self, message: str) -> None:
        self._line(f"chainscan: error: {message}")

    def update(self, items: list[ScanResult | BadLine]) -> None:
        for item in items:
            if isinstance(item, BadLine):
                self.counts[Status.INVALID] += 1
                self.kinds["bad-input"] += 1
                if self._bad_shown < MAX_BAD_LINES_SHOWN:
                    self._line(str(item))
                elif self._bad_shown == MAX_BAD_LINES_SHOWN:
                    self._line("... more bad lines: see the manifest (status 'invalid')")
                self._bad_shown += 1
                continue
            self.counts[item.status] += 1
            if item.error_kind is not None:
                self.kinds[item.error_kind] += 1
        self._advance(len(items))

    def update_counts(self, counted: list[tuple[str, str | None]]) -> None:
        """Results known only by (status, error kind): those of worker processes."""
        for status, kind in counted:
            self.counts[status] += 1
            if kind is not None:
                self.kinds[kind] += 1
        self._advance(len(counted))

    def _advance(self, done: int) -> None:
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[0]
            speed = task.speed
            self._progress.update(
                self._task,
                advance=done,
                ok=self.counts[Status.OK],
                failed=self.counts[Status.FAILED],
                invalid=self.counts[Status.INVALID],
                rate=f"{speed:.0f}" if speed else "-",
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def summary_line(self, seconds: float) -> str:
        done = sum(self.counts.values())
        rate = done / seconds if seconds > 0 else 0.0
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.kinds.most_common())
        failed = self.counts[Status.FAILED]
        return (
            f"{done} targets in {seconds:.1f}s ({rate:.0f}/s): ok {self.counts[Status.OK]}, "
            f"failed {failed}, invalid {self.counts[Status.INVALID]}"
            + (f" ({kinds})" if kinds else "")
        )

    def summary(
        self,
        seconds: float,
        where: str,
        whole: tuple[Mapping[str, int], Mapping[str, int]] | None = None,
    ) -> None:
        """The summary line; ``whole``: the manifest's counts by status and by error kind, for a
        resumed run, whose own results are only part of the scan."""
        if self.quiet:
            return
        line = self.summary_line(seconds)
        if whole is not None:
            counts, kinds = whole
            by_kind = ", ".join(
                f"{kind} {n}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])
            )
            line = (
                f"this run: {line}; whole scan: {sum(counts.values())} targets: ok "
                f"{counts.get(Status.OK, 0)}, failed {counts.get(Status.FAILED, 0)}, invalid "
                f"{counts.get(Status.INVALID, 0)}" + (f" ({by_kind})" if by_kind else "")
            )
        self._line(f"{line}; manifest: {where}")
