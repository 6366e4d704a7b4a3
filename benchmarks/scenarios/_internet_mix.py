"""The internet-like scenario's design, as pure functions: which input line is which kind of
target, the round trips each endpoint gets, and the mean time a target holds a slot.

The mix repeats every 10 lines: 7 live, 1 blackholed, 1 refused, 1 tarpitted (30% dead), so
any prefix of the input (the slow peers get the first N lines) has the same mix.

Round trips are spread log-uniformly over [RTT_MIN, RTT_MAX] (10-300 ms by default): each
endpoint (a listening address:port, a closed port, a tarpit) gets one of ``n`` values
``lo * (hi/lo)^(k/(n-1))``, many near and few far, as on the Internet. The mean of 40 such
values from 10 to 300 ms is about 87 ms.

Time a target holds a slot (the scenario's design, not a measurement):

* live: ``HANDSHAKE_ROUND_TRIPS`` (2: TCP's SYN/SYN-ACK, then TLS 1.3's ClientHello to the
  server's flight with the certificates; the client closes without waiting for more) x its RTT;
* blackholed (SYN dropped): the connect timeout;
* refused (closed port, the kernel answers RST): 1 RTT;
* tarpitted (accepts, never speaks): 1 RTT for the connect + the handshake timeout.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .._steady import TargetClass

PATTERN = (
    "live",
    "live",
    "blackholed",
    "live",
    "live",
    "refused",
    "live",
    "live",
    "tarpitted",
    "live",
)
"""The kind of line ``i`` is ``PATTERN[i % 10]``."""
KINDS = ("live", "blackholed", "refused", "tarpitted")
HANDSHAKE_ROUND_TRIPS = 2


def kind_of(index: int) -> str:
    return PATTERN[index % len(PATTERN)]


def share_of(kind: str) -> float:
    return PATTERN.count(kind) / len(PATTERN)


def log_spaced(low: float, high: float, count: int) -> list[float]:
    """``count`` values from ``low`` to ``high`` (both included), evenly spaced in log scale."""
    if count < 1 or low <= 0 or high < low:
        raise ValueError("need count >= 1 and 0 < low <= high")
    if count == 1:
        return [low]
    return [low * (high / low) ** (k / (count - 1)) for k in range(count)]


def spread(values: Sequence[float], count: int) -> list[float]:
    """``values`` dealt to ``count`` endpoints so neighbours differ (a stride through the
    sorted values), each value used ``count / len(values)`` times when that divides."""
    n = len(values)
    stride = next(s for s in range(max(1, n // 3), n + 1) if _coprime(s, n)) if n > 1 else 1
    return [values[(k * stride) % n] for k in range(count)]


def _coprime(a: int, b: int) -> bool:
    while b:
        a, b = b, a % b
    return a == 1


def design(
    *,
    live_rtts: Sequence[float],
    refused_rtts: Sequence[float],
    tarpit_rtts: Sequence[float],
    connect_timeout: float,
    handshake_timeout: float,
) -> list[TargetClass]:
    """The mix's classes with their shares and mean slot times, in seconds (RTTs in seconds,
    one per endpoint, each endpoint taking the same number of targets)."""
    return [
        TargetClass(
            name="live",
            share=share_of("live"),
            seconds=HANDSHAKE_ROUND_TRIPS * statistics.fmean(live_rtts),
        ),
        TargetClass(name="blackholed", share=share_of("blackholed"), seconds=connect_timeout),
        TargetClass(
            name="refused", share=share_of("refused"), seconds=statistics.fmean(refused_rtts)
        ),
        TargetClass(
            name="tarpitted",
            share=share_of("tarpitted"),
            seconds=statistics.fmean(tarpit_rtts) + handshake_timeout,
        ),
    ]
