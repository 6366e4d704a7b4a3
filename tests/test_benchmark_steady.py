"""The benchmarks' steady-state rate and latency bound (pure arithmetic), and the completion
hook the chainscan runners use to get completion times (one short child process)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._steady import (
    MIN_COMPLETIONS,
    TargetClass,
    latency_bound,
    mean_time_per_target,
    steady_rate,
)
from benchmarks.runners.chainscan import HOOK_VARIABLE, hooked_environment, read_completions


def test_steady_rate_of_an_even_stream_is_its_rate() -> None:
    times = [i / 200 for i in range(1000)]  # 200 per second
    assert steady_rate(times) == pytest.approx(200.0)


def test_steady_rate_leaves_out_a_slow_start_and_a_long_tail() -> None:
    start = [0.5] * 5  # nothing for 0.5 s (imports), then a burst
    body = [1.0 + i / 100 for i in range(90)]  # 100 per second
    tail = [10.0 + i for i in range(5)]  # the last timeouts
    times = start + body + tail
    whole = len(times) / max(times)
    assert whole < 10
    assert steady_rate(times) == pytest.approx(100.0, rel=0.05)


def test_steady_rate_ignores_order_and_uses_the_given_quantiles() -> None:
    times = [float(i) for i in range(101)]
    assert steady_rate(list(reversed(times))) == pytest.approx(1.0)
    assert steady_rate(times, low=0.0, high=1.0) == pytest.approx(1.0)


def test_no_steady_rate_without_enough_completions_or_time() -> None:
    assert steady_rate([float(i) for i in range(MIN_COMPLETIONS - 1)]) is None
    assert steady_rate([]) is None
    assert steady_rate([3.0] * 100) is None  # all at one instant: no span


def test_steady_rate_rejects_bad_quantiles() -> None:
    with pytest.raises(ValueError, match="low < high"):
        steady_rate([0.0, 1.0], low=0.9, high=0.1)


def test_mean_time_per_target_weights_the_classes() -> None:
    mix = [
        TargetClass(name="live", share=0.7, seconds=0.2),
        TargetClass(name="blackholed", share=0.1, seconds=2.0),
        TargetClass(name="refused", share=0.1, seconds=0.1),
        TargetClass(name="tarpitted", share=0.1, seconds=2.1),
    ]
    assert mean_time_per_target(mix) == pytest.approx(0.14 + 0.2 + 0.01 + 0.21)


def test_mean_time_per_target_wants_shares_adding_up_to_one() -> None:
    with pytest.raises(ValueError, match=r"add up to 0\.9"):
        mean_time_per_target([TargetClass(name="live", share=0.9, seconds=1.0)])
    with pytest.raises(ValueError, match="negative"):
        mean_time_per_target(
            [
                TargetClass(name="a", share=1.5, seconds=1.0),
                TargetClass(name="b", share=-0.5, seconds=1.0),
            ]
        )


def test_bound_is_the_smaller_of_slots_and_cpu() -> None:
    slots = latency_bound(1000, 0.5, 0.002)  # slots allow 2,000/s, the CPU 500/s
    assert slots.latency_rate == pytest.approx(2000.0)
    assert slots.cpu_rate == pytest.approx(500.0)
    assert (slots.rate, slots.limited_by) == (pytest.approx(500.0), "cpu")
    few = latency_bound(100, 0.5, 0.002)  # slots allow 200/s
    assert (few.rate, few.limited_by) == (pytest.approx(200.0), "latency")
    unmeasured = latency_bound(100, 0.5, None)
    assert (unmeasured.cpu_rate, unmeasured.rate) == (None, pytest.approx(200.0))
    with pytest.raises(ValueError):
        latency_bound(0, 0.5, None)


def test_completion_hook_wraps_scan_results_only_when_asked(tmp_path: Path) -> None:
    probe = "import chainscan._models as m; print(m.ScanResult.__init__.__qualname__)"
    repo = str(Path(__file__).resolve().parents[1])
    env = hooked_environment(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], repo])
    hooked = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert hooked.returncode == 0, hooked.stderr
    assert hooked.stdout.strip() == "_patch.<locals>.__init__"
    del env[HOOK_VARIABLE]
    plain = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert plain.stdout.strip() == "ScanResult.__init__"


def test_read_completions_gathers_every_process_file(tmp_path: Path) -> None:
    (tmp_path / "completions-1.txt").write_text("1.5\n2.5\n")
    (tmp_path / "completions-2.txt").write_text("3.0\ntorn")
    (tmp_path / "other.txt").write_text("9\n")
    assert sorted(read_completions(tmp_path)) == [1.5, 2.5, 3.0]


def test_the_internet_mix_is_30_percent_dead_in_every_prefix_of_ten() -> None:
    from benchmarks.scenarios._internet_mix import KINDS, PATTERN, kind_of, share_of

    assert {kind_of(i) for i in range(10)} == set(KINDS)
    assert [kind_of(i) for i in range(20)] == list(PATTERN) * 2
    assert share_of("live") == pytest.approx(0.7)
    assert sum(share_of(k) for k in KINDS) == pytest.approx(1.0)
    for kind in ("blackholed", "refused", "tarpitted"):
        assert share_of(kind) == pytest.approx(0.1)


def test_round_trips_are_log_spaced_and_dealt_evenly() -> None:
    from benchmarks.scenarios._internet_mix import log_spaced, spread

    values = log_spaced(10, 300, 40)
    assert values[0] == pytest.approx(10) and values[-1] == pytest.approx(300)
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert max(ratios) == pytest.approx(min(ratios))  # geometric
    assert 80 < sum(values) / len(values) < 95  # many near, few far
    dealt = spread(values, 40)
    assert sorted(dealt) == sorted(values)  # each value once
    assert abs(dealt[0] - dealt[1]) > 1  # neighbours differ
    assert log_spaced(50, 50, 1) == [50]
    with pytest.raises(ValueError):
        log_spaced(0, 10, 3)


def test_the_designed_mean_time_per_target() -> None:
    from benchmarks.scenarios._internet_mix import design

    mix = design(
        live_rtts=[0.01, 0.03],  # mean 20 ms, 2 round trips: 40 ms
        refused_rtts=[0.1],
        tarpit_rtts=[0.2],
        connect_timeout=2.0,
        handshake_timeout=2.0,
    )
    by_name = {c.name: c.seconds for c in mix}
    assert by_name == pytest.approx(
        {"live": 0.04, "blackholed": 2.0, "refused": 0.1, "tarpitted": 2.2}
    )
    expected = 0.7 * 0.04 + 0.1 * 2.0 + 0.1 * 0.1 + 0.1 * 2.2
    assert mean_time_per_target(mix) == pytest.approx(expected)
    bound = latency_bound(1000, expected, 0.0016)  # slots: ~2,180/s; CPU: 625/s
    assert bound.limited_by == "cpu" and bound.rate == pytest.approx(625.0)
