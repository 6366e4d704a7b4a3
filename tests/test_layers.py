"""The layers keep apart: the analysis side, the manifest model and reader and the commands never
import the network stack (trio, ``scan._probe``), and commands that read a scan never import
the writer. Each check imports in a fresh interpreter and looks at ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import chainscan

ROOT = Path(chainscan.__file__).parent
NETWORK = ("trio", "chainscan.scan._probe", "chainscan.scan._schedule", "chainscan.scan._tls")
WRITER = "chainscan.output._output"


def _modules(layer: str) -> list[str]:
    return sorted(
        f"chainscan.{layer}.{path.stem}"
        for path in (ROOT / layer).glob("_*.py")
        if path.stem != "__init__"
    )


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
        timeout=60,
    )
    return set(json.loads(done.stdout))


QUIET = ["chainscan", *_modules("analysis"), *_modules("manifest"), *_modules("commands")]


@pytest.mark.parametrize("module", QUIET)
def test_no_network_stack(module: str) -> None:
    loaded = _loaded_after(module)
    assert module in loaded
    assert not loaded & set(NETWORK), (module, sorted(loaded & set(NETWORK)))


@pytest.mark.parametrize(
    "module", [m for m in _modules("commands") if not m.endswith(("_merge", "_merge_cli"))]
)
def test_readers_of_a_scan_never_import_the_writer(module: str) -> None:
    """``merge`` writes a scan (with the writer, on purpose); every other command reads one."""
    assert WRITER not in _loaded_after(module)


def test_the_check_sees_the_network_stack_when_it_is_there() -> None:
    assert {"trio", "chainscan.scan._probe"} <= _loaded_after("chainscan.scan._schedule")
    assert WRITER in _loaded_after("chainscan.commands._merge")


def test_the_writer_process_imports_neither_trio_nor_the_display() -> None:
    """The writer process (``python -m chainscan.run._writer_process``) only analyses and writes
    files: trio and rich are the scanning process's, and importing them cost it about 0.1 s of
    CPU per run (issue 16)."""
    loaded = _loaded_after("chainscan.run._writer_process")
    assert WRITER in loaded
    assert not loaded & {"trio", "rich", "chainscan.run._display"}, sorted(
        loaded & {"trio", "rich", "chainscan.run._display"}
    )


def test_a_quiet_scanning_process_imports_rich_only_to_say_something() -> None:
    """The scanning process's display imports rich on its first line or progress bar, not
    before: a quiet run with nothing to say skips its import (about 30 ms of CPU, issue 16)."""
    code = (
        "import io, sys, chainscan._cli, chainscan.run._run\n"
        "from chainscan.run._display import Display\n"
        "display = Display(quiet=True, stream=io.StringIO())\n"
        "display.start(10)\n"
        "before = 'rich' in sys.modules\n"
        "display.warn('w')\n"
        "said = display._stream.getvalue() == 'chainscan: warning: w\\n'\n"
        "print(before, 'rich' in sys.modules, said)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
        timeout=60,
    )
    assert done.stdout.split() == ["False", "True", "True"]


def test_a_scanning_process_of_workers_imports_rich_only_to_warn() -> None:
    """``--workers`` children scan and write files; the display (rich) is the parent's."""
    loaded = _loaded_after("chainscan.run._workers")
    assert "trio" in loaded
    assert not loaded & {"rich", "chainscan.run._display"}
