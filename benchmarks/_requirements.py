"""What each benchmark entry point needs from outside Python's standard library, in one registry.

Theory of operation
-------------------

Every entry point under ``benchmarks/`` (``python -m benchmarks.run``, each scenario, the Dask
benchmark, the fleet and the chart) is listed in :data:`ENTRY_POINTS` with the things it needs
from the machine: programs it runs (nginx, GNU time, iptables, ``cc``, ...), files it builds
against (libnetfilter_queue's headers and libraries), Python packages it imports that the
project's own install (``pip install -e '.[test]'``) does not bring, sslyze's virtualenv, root.
The core run's needs are split by runner (:data:`RUNNER_NEEDS`), so ``--runners`` asks only
for the tools of the runners chosen.

Before it starts anything, an entry point calls :func:`require` with its needs. Each need
that is missing is installed the way the core run always did: Debian packages with
``apt-get install -y`` (all missing ones in one call; when that fails, once more after
``apt-get update``), sslyze's virtualenv with ``python3 -m venv`` + ``pip install sslyze``.
What cannot be installed that way (not root, no apt-get, a Python package of the project's
own environment, which a benchmark does not change behind the user's back) stops the entry
point at once with one line naming what is missing and the command that installs it.

``python3 -m benchmarks.setup`` installs the needs of every entry point at once: the one
command the README documents. ``tests/test_benchmark_setup.py`` reads the entry points'
source (and the modules and child scripts they use) for the programs they run and the
packages they import, and fails if one is not declared here: a new scenario cannot forget one.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
SETUP_COMMAND = "python3 -m benchmarks.setup"
"""The one command that installs everything the benchmarks need (see benchmarks/README.md)."""

_APT_OPTIONS = ("-y", "-q", "-o", "DPkg::Lock::Timeout=300")
"""Wait for another apt-get (a shared machine) instead of failing on its lock."""


class MissingRequirement(RuntimeError):
    """Something an entry point needs is missing and could not be installed; the message is one
    line: what is missing, for what, and the command that installs it."""

    def __init__(self, message: str, need: Need) -> None:
        super().__init__(message)
        self.need = need


@dataclass(frozen=True, slots=True, kw_only=True)
class Apt:
    """Programs and files that Debian packages provide."""

    what: str
    """What it is, for messages: ``iptables``, ``a C compiler``."""
    packages: tuple[str, ...]
    """Debian packages that provide it, installed together."""
    programs: tuple[str, ...] = ()
    """Programs it provides, as the benchmarks name them (looked up on PATH)."""
    files: tuple[str, ...] = ()
    """Glob patterns that must each match a file (headers, libraries to link)."""
    candidates: tuple[str, ...] = ()
    """Absolute paths that also count for a program not on PATH (the code that runs it looks
    there too: ``_system.find_program``)."""

    def missing(self) -> str | None:
        """None when everything is there, else what is not."""
        gone = [p for p in self.programs if self._find(p) is None]
        gone += [f for f in self.files if not glob.glob(f)]
        return ", ".join(gone) if gone else None

    def _find(self, program: str) -> str | None:
        others = (c for c in self.candidates if Path(c).name == program and os.access(c, os.X_OK))
        return shutil.which(program) or next(others, None)

    def install_command(self) -> str:
        return shlex.join(["apt-get", "install", "-y", *self.packages])


@dataclass(frozen=True, slots=True, kw_only=True)
class Pip:
    """Python packages imported by the interpreter that runs the benchmarks."""

    what: str
    modules: tuple[str, ...]
    """Modules that must import (``dask.distributed``)."""
    spec: str
    """What to give pip: ``dask[distributed]>=2024.1``."""

    def missing(self) -> str | None:
        gone = [m for m in self.modules if not _module_available(m)]
        return ", ".join(gone) if gone else None

    def install_command(self) -> str:
        return shlex.join(["python3", "-m", "pip", "install", self.spec])


@dataclass(frozen=True, slots=True, kw_only=True)
class Venv:
    """A virtualenv of its own for a tool whose pins clash with ours (sslyze)."""

    what: str
    path: Path
    packages: tuple[str, ...]
    """What ``pip install`` gets in it."""
    modules: tuple[str, ...]
    """Modules that must import in it."""
    base_python: str = "python3"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def missing(self) -> str | None:
        if not self.python.exists():
            return f"{self.path} (no virtualenv)"
        code = "; ".join(f"import {m}" for m in self.modules)
        try:
            done = subprocess.run(
                [str(self.python), "-c", code], capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{self.path} ({exc})"
        return None if done.returncode == 0 else f"{', '.join(self.modules)} in {self.path}"

    def install_command(self) -> str:
        return (
            f"{shlex.join([self.base_python, '-m', 'venv', str(self.path)])} && "
            f"{shlex.join([str(self.python), '-m', 'pip', 'install', *self.packages])}"
        )

    def install(self) -> str | None:
        """Make the virtualenv and install into it; None on success, else why it failed."""
        print(f"benchmarks: installing {self.what} into {self.path} (once)", file=sys.stderr)
        for step in (
            [self.base_python, "-m", "venv", str(self.path)],
            [str(self.python), "-m", "pip", "install", "-q", *self.packages],
        ):
            try:
                done = subprocess.run(
                    step, capture_output=True, text=True, timeout=600, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"`{' '.join(step[:3])}` failed: {exc}"
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                return f"`{' '.join(step[:4])}` exited {done.returncode}: {last}"
        return self.missing() and f"still missing after the install: {self.missing()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Root:
    """Root privileges (network namespaces, iptables): nothing to install."""

    what: str

    def missing(self) -> str | None:
        return None if os.geteuid() == 0 else "root privileges"

    def install_command(self) -> str:
        return "run it as root (e.g. with sudo)"


Need = Apt | Pip | Venv | Root


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# The registry

GNU_TIME = Apt(
    what="GNU time", packages=("time",), programs=("time",), candidates=("/usr/bin/time",)
)
"""Wraps every measured run (``runners/_base.py``: peak RSS of the tool's tree)."""
NGINX = Apt(
    what="nginx",
    packages=("nginx",),
    programs=("nginx",),
    candidates=("/usr/sbin/nginx", "/usr/local/sbin/nginx"),
)
SHELL = Apt(
    what="sh, xargs, grep", packages=("dash", "findutils", "grep"), programs=("sh", "xargs", "grep")
)
OPENSSL = Apt(what="the openssl command", packages=("openssl",), programs=("openssl",))
TIMEOUT = Apt(what="timeout (coreutils)", packages=("coreutils",), programs=("timeout",))
"""Bounds each ``openssl s_client`` of ``openssl-xargs`` when targets may be dead (scenarios)."""
NMAP = Apt(what="nmap", packages=("nmap",), programs=("nmap",))
GIT = Apt(what="git", packages=("git",), programs=("git",))
"""Names the measured commit in the result files ("unknown" without it)."""
IPROUTE = Apt(what="ip (iproute2)", packages=("iproute2",), programs=("ip",))
IPTABLES = Apt(what="iptables", packages=("iptables",), programs=("iptables",))
C_COMPILER = Apt(
    what="a C compiler",
    packages=("gcc", "libc6-dev"),
    programs=("cc",),
    files=("/usr/include/stdio.h",),
)
NFQUEUE_DEV = Apt(
    what="libnetfilter_queue headers and libraries",
    packages=("libnetfilter-queue-dev", "libnfnetlink-dev"),
    files=(
        "/usr/include/libnetfilter_queue/libnetfilter_queue.h",
        "/usr/lib/*/libnetfilter_queue.so",
        "/usr/lib/*/libnfnetlink.so",
    ),
)
"""For the latency scenario's delayer, ``nfq_delay.c`` (``-lnetfilter_queue -lnfnetlink``)."""
ROOT = Root(what="root (network namespaces, iptables)")
SSLYZE = Venv(
    what="sslyze",
    path=BENCHMARKS / ".venv-sslyze",
    packages=("sslyze",),
    modules=("sslyze",),
)
"""sslyze pins its own cryptography and nassl: a virtualenv of its own (git-ignored)."""
DASK = Pip(
    what="dask.distributed",
    modules=("dask", "distributed"),
    spec="dask[distributed]>=2024.1",
)
"""Also in the project's ``test`` and ``dask`` extras; listed so a bare install is caught."""
MATPLOTLIB = Pip(what="matplotlib", modules=("matplotlib",), spec="matplotlib>=3.7")
"""For the charts only: without it the core run skips its chart and says so."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPoint:
    """A command under ``benchmarks/`` and what it needs."""

    module: str
    """``benchmarks.scenarios.latency``: run as ``python -m MODULE``."""
    needs: tuple[Need, ...]
    """Checked (and installed if possible) before it starts; it stops when one is missing."""
    optional: tuple[Need, ...] = ()
    """Used when present (the chart, the commit's name), installed by the set-up command."""

    @property
    def command(self) -> str:
        return f"python -m {self.module}"


RUNNER_NEEDS: dict[str, tuple[Need, ...]] = {
    "chainscan": (),
    "chainscan-1p": (),
    "chainscan-2w": (),
    "bare-trio": (),
    "openssl-xargs": (OPENSSL, SHELL, TIMEOUT),
    "sslyze": (SSLYZE,),
    "sslyze-api": (SSLYZE,),
    "nmap-ssl-cert": (NMAP, SHELL),
    "openssl-s_time": (OPENSSL, SHELL),
}
"""The core run's runners (``runners.RUNNERS``) and the tools each one runs."""

CORE_BASE: tuple[Need, ...] = (NGINX, GNU_TIME, OPENSSL)
"""The core run's own needs, whatever the runners: the fleet, the measurement, the machine
description (``openssl version``)."""


LATENCY_NEEDS: tuple[Need, ...] = (
    ROOT,
    IPROUTE,
    IPTABLES,
    C_COMPILER,
    NFQUEUE_DEV,
    NGINX,
    GNU_TIME,
    *RUNNER_NEEDS["openssl-xargs"],
    *RUNNER_NEEDS["sslyze-api"],
)
"""The latency scenarios: namespace, delayer, fleet, and the peers (:mod:`.scenarios._peers`);
the sslyze virtualenv is needed for the ``sslyze-api`` peer (``--peers`` without it runs)."""


def _unique(needs: Iterable[Need]) -> tuple[Need, ...]:
    return tuple(dict.fromkeys(needs))


def core_needs(runners: Sequence[str]) -> tuple[Need, ...]:
    """What ``python -m benchmarks.run --runners RUNNERS`` needs."""
    return _unique([*CORE_BASE, *(n for r in runners for n in RUNNER_NEEDS[r])])


ENTRY_POINTS: dict[str, EntryPoint] = {
    e.module: e
    for e in (
        EntryPoint(
            module="benchmarks.run",
            needs=core_needs(list(RUNNER_NEEDS)),
            optional=(MATPLOTLIB, GIT),
        ),
        EntryPoint(
            module="benchmarks.scenarios.latency",
            needs=LATENCY_NEEDS,
            optional=(GIT,),
        ),
        EntryPoint(
            module="benchmarks.scenarios.internet",
            needs=LATENCY_NEEDS,
            optional=(GIT,),
        ),
        EntryPoint(module="benchmarks.scenarios.scale", needs=(GNU_TIME,), optional=(GIT,)),
        EntryPoint(module="benchmarks.dask_bench", needs=(NGINX, DASK)),
        EntryPoint(module="benchmarks.ingest_bench", needs=(), optional=(GIT,)),
        EntryPoint(module="benchmarks.writer_bench", needs=(), optional=(GIT,)),
        EntryPoint(module="benchmarks.api_backends", needs=(NGINX,), optional=(GIT,)),
        EntryPoint(module="benchmarks.disk_latency", needs=(NGINX,), optional=(GIT,)),
        EntryPoint(module="benchmarks.fleet", needs=(NGINX,)),
        EntryPoint(module="benchmarks.chart", needs=(MATPLOTLIB,)),
        EntryPoint(module="benchmarks.show_bench", needs=(OPENSSL,), optional=(GIT,)),
    )
}
"""Every command under ``benchmarks/``; ``tests/test_benchmark_setup.py`` checks it is complete."""


def everything() -> tuple[Need, ...]:
    """What the set-up command installs: every need, required or optional, of every entry."""
    return _unique(n for e in ENTRY_POINTS.values() for n in (*e.needs, *e.optional))


# --------------------------------------------------------------------------------------------
# Checking and installing


def _can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: Sequence[str]) -> bool:
    """``apt-get install -y PACKAGES`` (and, if that fails, again after ``apt-get update``);
    True when apt-get succeeded. apt-get's output goes to stderr, away from the results."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for refresh in (False, True):
        if refresh:
            subprocess.run(["apt-get", "update", *_APT_OPTIONS[1:]], env=env, stdout=2, check=False)
        print(f"benchmarks: apt-get install -y {' '.join(packages)}", file=sys.stderr, flush=True)
        done = subprocess.run(
            ["apt-get", "install", *_APT_OPTIONS, *packages], env=env, stdout=2, check=False
        )
        if done.returncode == 0:
            return True
    return False


def missing(needs: Iterable[Need]) -> list[tuple[Need, str]]:
    """The needs that are not met, each with what exactly is missing."""
    return [(n, gone) for n in needs if (gone := n.missing()) is not None]


def install(needs: Sequence[Need], *, pip: bool = False) -> list[tuple[Need, str]]:
    """Install what is missing of ``needs`` that can be installed here: Debian packages (one
    apt-get for all, when root), virtualenvs, and with ``pip`` the packages of this Python
    (only the set-up command does that). Returns what is still missing."""
    todo = missing(needs)
    apt = [n for n, _ in todo if isinstance(n, Apt)]
    if apt and _can_apt():
        apt_install(list(dict.fromkeys(p for n in apt for p in n.packages)))
    for need, _ in todo:
        if isinstance(need, Venv) and need.missing() is not None:
            if (why := need.install()) is not None:
                print(f"benchmarks: {need.what}: {why}", file=sys.stderr, flush=True)
        elif pip and isinstance(need, Pip) and need.missing() is not None:
            print(f"benchmarks: {need.install_command()}", file=sys.stderr, flush=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", need.spec], stdout=2, check=False
            )
    return missing(needs)


def describe_missing(entry: str, need: Need, gone: str) -> str:
    """The one line an entry point stops with."""
    detail = "" if gone == need.what else f" ({gone})"
    return (
        f"{entry}: {need.what} is missing{detail}; install it with: {need.install_command()}  "
        f"(or everything the benchmarks need: {SETUP_COMMAND})"
    )


def require(entry: str, needs: Sequence[Need]) -> None:
    """Install what is missing of ``needs`` if it can be, else raise :class:`MissingRequirement`
    with one line about the first need still missing. Call it before starting anything."""
    still = install(needs)
    if still:
        need, gone = still[0]
        raise MissingRequirement(describe_missing(entry, need, gone), need)


def require_or_exit(entry: str, needs: Sequence[Need]) -> None:
    """:func:`require` for a ``main()``: exits with status 2 and the one line on stderr."""
    try:
        require(entry, needs)
    except MissingRequirement as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(2) from None
