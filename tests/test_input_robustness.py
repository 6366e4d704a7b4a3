"""Bad input through the command line, whole-file fuzzing, and more concurrency than descriptors.

``tests/test_targets.py`` covers the parser line by line (every error with its message, a
hypothesis fuzz of ``parse_line``, BOM, CRLF, binary files, a 10 MB line, an empty file) at the
library level. Here: what the user sees for each of those files, a fuzz of whole files of
arbitrary bytes, and a scan asked for far more connections than the file-descriptor limit holds.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainscan import BadLine, Target
from chainscan._errors import InputError
from chainscan.scan._targets import MAX_LINE, count_lines, iter_targets, open_lines
from tests.servers import ServerHandle

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "--rate", "0"]


def chainscan(
    *args: str, stdin: bytes | None = None, nofile: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.run(
        [sys.executable, "-m", "chainscan", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        preexec_fn=limit,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def entries(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_bytes().splitlines()]


# --------------------------------------------------------------------------------------------
# Each kind of bad file, as the user sees it


@pytest.mark.integration
def test_bom_and_crlf_line_ends_are_read_as_text(tls_server: ServerHandle, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_bytes(
        b"\xef\xbb\xbfa.test:%d{127.0.0.1}\r\n# a comment\r\nb.test:%d{127.0.0.1}\r\n"
        % (tls_server.port, tls_server.port)
    )
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), *FAST, "-q")
    assert proc.returncode == 0, proc.stderr
    got = sorted((e["input"]["line"], e["input"]["text"], e["host"]) for e in entries(out))
    assert got == [
        (1, f"a.test:{tls_server.port}{{127.0.0.1}}", "a.test"),
        (3, f"b.test:{tls_server.port}{{127.0.0.1}}", "b.test"),
    ]


@pytest.mark.parametrize(
    "data",
    [b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "a.test\n".encode("utf-16")],
    ids=["binary", "utf-16"],
)
def test_a_binary_file_is_refused_with_a_clear_message(tmp_path: Path, data: bytes) -> None:
    given_file = tmp_path / "hosts.bin"
    given_file.write_bytes(data)
    proc = chainscan(str(given_file), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"chainscan: error: input file '{given_file}' does not look")
    assert "UTF-8 text file" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1  # a message, not a traceback


@pytest.mark.integration
def test_a_ten_megabyte_line_is_one_bad_line_and_the_scan_goes_on(
    tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    with hosts.open("wb") as stream:
        stream.write(b"x" * (10 * 1024 * 1024) + b"\n")
        stream.write(b"a.test:%d{127.0.0.1}\n" % tls_server.port)
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), *FAST)
    assert proc.returncode == 1
    assert f"{hosts}:1: line is too long (10485760 characters, at most {MAX_LINE})" in proc.stderr
    first, second = sorted(entries(out), key=lambda e: e["input"]["line"])
    assert first["status"] == "invalid" and len(first["input"]["text"]) == 200
    assert second["status"] == "ok"
    assert len((out / "manifest.jsonl").read_bytes()) < 10_000  # the line is not copied


@pytest.mark.parametrize(
    ("data", "stdin"),
    [(b"", False), (b"\xef\xbb\xbf", False), (b"# only comments\n\n   \n", False), (b"", True)],
    ids=["empty", "bom-only", "comments-only", "empty-stdin"],
)
def test_a_file_without_targets_says_so(tmp_path: Path, data: bytes, stdin: bool) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_bytes(data)
    out = tmp_path / "out"
    proc = chainscan("-" if stdin else str(hosts), "-o", str(out), stdin=data if stdin else None)
    assert proc.returncode == 3  # fails visibly: a CI job fed an empty list must not pass
    source = "standard input" if stdin else str(hosts)
    assert f"chainscan: error: {source} has no targets" in proc.stderr
    assert "0 targets" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["targets"] == [] and manifest["run"]["complete"] is True


# --------------------------------------------------------------------------------------------
# Whole files of arbitrary bytes


LINEISH = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"\xef\xbb\xbf", b"\r\n", b"\r", b"\x00", b"example.com:443", b"[::1]:1", b"#", b"\xff"]
    ),
    st.text(max_size=20).map(str.encode),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(LINEISH, max_size=30), st.sampled_from([b"\n", b"\r\n", b""]))
def test_any_file_gives_targets_or_numbered_bad_lines_or_one_input_error(
    pieces: list[bytes], separator: bytes
) -> None:
    data = separator.join(pieces)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "fuzz.txt")
        Path(path).write_bytes(data)
        try:
            lines = open_lines(path)
        except InputError as exc:
            assert b"\0" in data[:8192]  # only a file that is not text is refused outright
            assert "does not look like a text file" in str(exc)
            return
        with lines:
            results = list(iter_targets(lines, source=path))
        total = count_lines(path)
    assert total is not None
    numbers = [r.line for r in results]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert all(1 <= n <= total for n in numbers)
    for result in results:
        assert isinstance(result, Target | BadLine)
        if isinstance(result, BadLine):
            assert result.reason and "\n" not in result.reason
            assert str(result).startswith(f"{path}:{result.line}: ")


# --------------------------------------------------------------------------------------------
# More concurrency than file descriptors


@pytest.mark.integration
def test_concurrency_beyond_the_descriptor_limit_is_lowered_and_nothing_fails(
    tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"n{i}.test:{tls_server.port}{{127.0.0.1}}\n" for i in range(200)))
    out = tmp_path / "out"
    proc = chainscan(
        str(hosts), "-o", str(out), "--concurrency", "5000", "--per-ip", "0", *FAST, nofile=256
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "chainscan: warning: --concurrency 5000 needs 5160 file descriptors but the limit is 256"
        in proc.stderr
    )
    kinds = Counter((e["status"], e["error_kind"]) for e in entries(out))
    assert kinds == {("ok", None): 200}  # in particular, no "local" (EMFILE) failure
    assert tls_server.accept_errors == []
