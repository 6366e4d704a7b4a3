"""Files chainscan's commands create respect the umask, and files they replace keep their mode
(``chainscan/_files.atomic_write``: ``pins -o``, ``report --html``, ``bundle``, ``export``)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainscan._files import atomic_write, current_umask


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_is_read_without_changing_it(umask: None) -> None:
    assert current_umask() == 0o022
    os.umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027


def test_a_new_file_gets_the_umask_mode(tmp_path: Path, umask: None) -> None:
    atomic_write(tmp_path / "report.html", b"<html>")
    assert mode(tmp_path / "report.html") == 0o644
    os.umask(0o077)
    atomic_write(tmp_path / "private.txt", b"x")
    assert mode(tmp_path / "private.txt") == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "infoplist_configuration.json"
    target.write_text("{}")
    target.chmod(0o664)
    atomic_write(target, b'{"allowbundledonly": true}')
    assert mode(target) == 0o664
    assert target.read_bytes() == b'{"allowbundledonly": true}'


def test_report_html_is_readable_by_a_web_server(
    tmp_path: Path, umask: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from chainscan._cli import main

    scan = tmp_path / "scan"
    scan.mkdir()
    (scan / "manifest.jsonl").write_text("")
    assert main(["report", str(scan), "--html", str(tmp_path / "r.html"), "-q"]) == 0
    assert mode(tmp_path / "r.html") == 0o644
