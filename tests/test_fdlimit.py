"""The descriptor budget: raise the soft limit, or scale the concurrency down with a warning."""

from __future__ import annotations

import resource

import pytest

from chainscan.scan import _fdlimit


def test_enough_room_keeps_the_concurrency() -> None:
    assert _fdlimit.fit_concurrency(10) == (10, None)


def test_soft_limit_is_raised_up_to_the_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {"soft": 256, "hard": 20_000}
    monkeypatch.setattr(resource, "getrlimit", lambda _: (limits["soft"], limits["hard"]))

    def setrlimit(_: int, value: tuple[int, int]) -> None:
        limits["soft"] = value[0]

    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    assert _fdlimit.fit_concurrency(5000) == (5000, None)
    assert limits["soft"] == 5000 + _fdlimit.RESERVED_FDS


def test_hard_limit_too_low_lowers_concurrency_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 2048))
    monkeypatch.setattr(resource, "setrlimit", lambda *_: None)
    fitted, warning = _fdlimit.fit_concurrency(50_000)
    assert fitted == 2048 - _fdlimit.RESERVED_FDS
    assert warning is not None
    assert "--concurrency 50000" in warning and f"--concurrency {fitted}" in warning
