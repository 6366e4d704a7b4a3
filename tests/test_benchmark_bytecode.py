"""The harness runs Python tools with their bytecode cached (``runners._base.bytecode_cached``),
even where ``PYTHONDONTWRITEBYTECODE`` is set: a measured chainscan loads ``.pyc`` files, as an
installed copy does, instead of compiling its modules in every process (one short child)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.runners._base import PYCACHE, bytecode_cached


def test_bytecode_is_written_to_the_harness_cache_not_the_checkout() -> None:
    env = bytecode_cached({"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin", "X": "y"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(PYCACHE)
    assert PYCACHE.parent.name == "benchmarks"
    assert env["PATH"] == "/usr/bin" and env["X"] == "y"


def test_a_prefix_of_the_callers_is_kept() -> None:
    env = bytecode_cached({"PYTHONPYCACHEPREFIX": "/elsewhere"})
    assert env["PYTHONPYCACHEPREFIX"] == "/elsewhere"


def test_a_child_run_that_way_writes_and_reads_bytecode(tmp_path: Path) -> None:
    module = tmp_path / "probe_module.py"
    module.write_text("VALUE = 1\n")
    env = bytecode_cached(
        {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(tmp_path / "cache")}
    )
    env["PYTHONPATH"] = str(tmp_path)
    code = "import sys, probe_module; print(sys.flags.dont_write_bytecode)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"
    assert list((tmp_path / "cache").rglob("probe_module*.pyc"))
    assert not list(tmp_path.glob("__pycache__"))
