"""A bar chart of a benchmark result file: targets/s, CPU ms per target and peak RSS per runner.

``python -m benchmarks.run`` calls :func:`write_chart` after writing its JSON; by hand::

    python -m benchmarks.chart benchmarks/results/latest-core.json -o chart.png

matplotlib is optional (``pip install matplotlib``): without it :func:`write_chart` returns None
and the benchmark only prints that the chart was skipped. It is imported inside the function, so
the harness never pays for it otherwise, and uses the non-interactive Agg backend (no display).

Three panels share the runner axis: throughput on a log scale (the runners span three orders of
magnitude), CPU per target (log too), and the largest single process's peak RSS. chainscan's
bars are highlighted; ``openssl-s_time`` is hatched because it counts handshakes, not targets,
and runners measured on a subset of the targets are marked in their label.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._requirements import ENTRY_POINTS, require_or_exit

HANDSHAKE_RUNNERS = frozenset({"openssl-s_time"})
"""Runners whose "targets" are handshakes without SNI."""


def write_chart(data: dict[str, Any], path: Path) -> Path | None:
    """Draw ``data`` (a result file's content) into the PNG ``path``; None if no matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    summary: dict[str, dict[str, Any]] = data.get("summary") or {}
    subsets: dict[str, int] = data.get("subsets") or {}
    names = [n for n in data.get("runners", summary) if n in summary]
    if not names:
        return None
    labels = [
        n
        + (f"\n(first {subsets[n]})" if n in subsets else "")
        + ("\n(handshakes)" if n in HANDSHAKE_RUNNERS else "")
        for n in names
    ]
    panels = (
        ("targets_per_second", 1.0, "targets/s (log)", True),
        ("cpu_seconds_per_target", 1000.0, "CPU ms per target (log)", True),
        ("peak_rss_mb", 1.0, "peak RSS MB (one process)", False),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.55 * len(names) + 2.2), sharey=True)
    for ax, (key, scale, title, log_scale) in zip(axes, panels, strict=True):
        values = [summary[n][key] * scale for n in names]
        colors = ["tab:orange" if n.startswith("chainscan") else "tab:blue" for n in names]
        bars = ax.barh(labels, values, color=colors)
        for bar, name in zip(bars, names, strict=True):
            if name in HANDSHAKE_RUNNERS:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        ax.bar_label(
            bars,
            labels=[f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in values],
            padding=3,
            fontsize=8,
        )
        if log_scale and all(v > 0 for v in values):
            ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.margins(x=0.25)
    axes[0].invert_yaxis()
    fleet = data.get("fleet") or {}
    machine = data.get("machine") or {}
    fig.suptitle(
        f"chainscan benchmark, scenario {data.get('scenario', '?')}: "
        f"{fleet.get('targets', '?')} targets on loopback nginx, "
        f"{data.get('settings', {}).get('repeat', '?')} repeat(s), "
        f"{machine.get('nproc', '?')} CPUs; {data.get('started', '')}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chart", description="Bar chart of a benchmark result file."
    )
    parser.add_argument("result", type=Path, help="a results/*.json file")
    parser.add_argument("-o", "--output", type=Path, help="PNG path (default: next to the JSON)")
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.chart", ENTRY_POINTS["benchmarks.chart"].needs)
    data = json.loads(args.result.read_text())
    written = write_chart(data, args.output or args.result.with_suffix(".png"))
    if written is None:
        print("no chart: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 1
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
