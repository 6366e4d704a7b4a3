"""The README's library examples run as written, against a loopback server.

Each ```python block of the README's "Library" section is run in a fresh interpreter, with one
change: its target list ``["example.com", "example.net:8443"]`` (which would need the internet)
is replaced by targets on a loopback TLS server. The test checks that the replacement happened
once per block and that each example prints what it should for those targets.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import ServerHandle

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TARGETS = '["example.com", "example.net:8443"]'


def library_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Library\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_example(code: str, targets: list[str]) -> str:
    assert code.count(EXAMPLE_TARGETS) == 1, "the example's target list changed: update the test"
    code = code.replace(EXAMPLE_TARGETS, repr(targets))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_there_is_one_example_per_way_of_calling() -> None:
    examples = library_examples()
    assert len(examples) == 3
    assert "trio.run(main)" in examples[0]
    assert "asyncio.run(main())" in examples[1]
    assert "async" not in examples[2]


@pytest.mark.integration
def test_trio_example(tls_server: ServerHandle) -> None:
    out = run_example(library_examples()[0], [f"a.test:{tls_server.port}{{127.0.0.1}}", "x:0"])
    assert "bad input: <api>:2: port 0 is out of range" in out
    assert "a.test ok None" in out
    assert "   a.test sha256/" in out
    assert "   chainscan test intermediate sha256/" in out


@pytest.mark.integration
def test_asyncio_example_with_inventory(tls_server: ServerHandle) -> None:
    targets = [f"b.test:{tls_server.port}{{127.0.0.1}}", "127.0.0.1:1"]
    out = run_example(library_examples()[1], targets)
    lines = out.splitlines()
    assert "127.0.0.1 failed refused" in lines
    # The test root is not among certifi's roots: untrusted, and the problem says so.
    (b_line,) = [line for line in lines if line.startswith("b.test ")]
    assert "is not in the trust store (certifi)" in b_line
    assert "  hostname matches: True" in lines
    assert any(line.startswith("   untrusted-root error ") for line in lines), out


@pytest.mark.integration
def test_sync_example(tls_server: ServerHandle) -> None:
    out = run_example(library_examples()[2], [f"a.test:{tls_server.port}{{127.0.0.1}}"])
    assert out.splitlines() == ["a.test ok 2", "1 results"]
