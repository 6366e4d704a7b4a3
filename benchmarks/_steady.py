"""Steady-state rates and the latency bound: pure arithmetic, shared by the core run and the
scenarios (no I/O here; the clocks that produce the completion times live with the runners).

Steady-state rate
-----------------

A short run's whole-run rate (targets / wall time) carries the tool's start-up (interpreter,
imports, a writer process) and its tail (the last, slowest targets; on a fleet with dead
targets, the last timeouts). The steady-state rate leaves both out: with the completion times
of the targets sorted, ``t[i]`` being the i-th, and ``lo = round(0.1 (n - 1))``,
``hi = round(0.9 (n - 1))``::

    steady = (hi - lo) / (t[hi] - t[lo])

that is, targets finished per second between the 10th and the 90th percentile of completions.
Only differences of times matter, so any clock works (monotonic seconds from any origin). Times
taken by polling (several completions share one sample) are fine as long as a run spans many
polling intervals; with fewer than :data:`MIN_COMPLETIONS` completions, or when the two
percentiles fall on the same instant, there is no steady rate (None).

The latency bound
-----------------

With ``C`` targets in flight at a time and a mean time per target ``T`` (how long a target
holds its slot), no scanner finishes more than ``C / T`` targets per second; and none finishes
more than its CPU allows, ``1 / (CPU seconds per target)``. :func:`mean_time_per_target`
computes ``T`` from a scenario's design (the mix of live and dead targets, each with its round
trips and timeouts), :func:`latency_bound` the minimum of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_COMPLETIONS = 20
"""Fewer completions than this give no steady rate: the percentiles would be a few targets."""


def steady_rate(times: Sequence[float], low: float = 0.1, high: float = 0.9) -> float | None:
    """Completions per second between the ``low`` and ``high`` quantiles of ``times`` (the
    completion times, in seconds, in any order; see the module header), or None."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low} high={high}")
    if len(times) < MIN_COMPLETIONS:
        return None
    ordered = sorted(times)
    last = len(ordered) - 1
    lo, hi = round(low * last), round(high * last)
    span = ordered[hi] - ordered[lo]
    if hi <= lo or span <= 0:
        return None
    return (hi - lo) / span


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetClass:
    """One kind of target in a scenario's mix: its share and how long it holds a slot."""

    name: str
    share: float
    """Fraction of the input (the shares of a mix add up to 1)."""
    seconds: float
    """Mean time one such target holds its slot: round trips x RTT, or a timeout."""


def mean_time_per_target(mix: Sequence[TargetClass]) -> float:
    """``sum(share x seconds)`` over the mix; the shares must add up to 1."""
    total = sum(c.share for c in mix)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"the shares of the mix add up to {total:g}, not 1")
    if any(c.share < 0 or c.seconds < 0 for c in mix):
        raise ValueError("shares and times must not be negative")
    return sum(c.share * c.seconds for c in mix)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """``min(concurrency / mean time per target, CPU-bound rate)``, with both terms."""

    concurrency: int
    mean_seconds: float
    latency_rate: float
    """``concurrency / mean_seconds``: what the slots allow."""
    cpu_rate: float | None
    """``1 / CPU seconds per target``: what the CPU allows (None: not measured)."""

    @property
    def rate(self) -> float:
        return self.latency_rate if self.cpu_rate is None else min(self.latency_rate, self.cpu_rate)

    @property
    def limited_by(self) -> str:
        return (
            "cpu" if self.cpu_rate is not None and self.cpu_rate < self.latency_rate else "latency"
        )


def latency_bound(
    concurrency: int, mean_seconds: float, cpu_seconds_per_target: float | None
) -> Bound:
    """The bound for ``concurrency`` slots, ``mean_seconds`` per target and the measured CPU
    cost per target (None or 0: no CPU term)."""
    if concurrency < 1 or mean_seconds <= 0:
        raise ValueError("concurrency must be >= 1 and the mean time per target > 0")
    cpu_rate = 1.0 / cpu_seconds_per_target if cpu_seconds_per_target else None
    return Bound(
        concurrency=concurrency,
        mean_seconds=mean_seconds,
        latency_rate=concurrency / mean_seconds,
        cpu_rate=cpu_rate,
    )
