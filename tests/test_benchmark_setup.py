"""Every external program and package a benchmark entry point uses is declared, and set up.

No network, no installs: the test reads the source. For each entry point of
``benchmarks._requirements.ENTRY_POINTS`` it follows the benchmark modules it imports and the
child scripts it starts (``-m benchmarks.x``, ``name.py``), and collects

* the programs they run: the head of every list literal that looks like an argv (``["ip",
  ...]``, ``[*prefix, "iptables", ...]``), the names given to ``shutil.which`` /
  ``find_program``, and the commands of every shell string (``"openssl ... && echo ok"``, a
  string given to ``subprocess`` with ``shell=True``);
* the third-party packages they import (not the standard library, not chainscan's own
  dependencies from ``pyproject.toml``);
* the C headers the C sources they compile include (beyond the C library's and the kernel's)
  and the libraries their compile commands link (``-lNAME``);

and checks each is provided by a need the entry point declares, which ``python3 -m
benchmarks.setup`` installs. A new scenario that runs ``tc`` or imports ``scapy`` without
declaring it fails here, as does a new ``__main__`` module under ``benchmarks/`` that is
neither registered nor started by a registered one.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.metadata
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from benchmarks import _requirements as req
from benchmarks import setup as bench_setup
from benchmarks.runners import RUNNERS

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"

NOT_NEEDS = frozenset({"apt-get", "python", "python3"})
"""Programs that are no need: Debian's installer, which installs the needs, and Python, which
runs the benchmarks."""
NOT_RUN_BY: dict[str, frozenset[str]] = {
    "benchmarks.scenarios.scale": frozenset({"nginx"}),
    "benchmarks.writer_bench": frozenset({"nginx"}),
}
"""Programs an entry point's modules name but it never runs: scale imports fleet.py for its
test PKI only (``write_pki``), not for nginx; writer_bench for the fleet's PKI (``_hierarchy``).
Keep this short; every line needs a reason."""
MACHINERY = frozenset({BENCHMARKS / "_requirements.py", BENCHMARKS / "setup.py"})
"""The registry and the set-up command: the names in them are the declarations, not uses."""
SHELL_BUILTINS = frozenset(
    {"echo", "wait", "exit", "true", "false", "test", "cd", "exec", "set", "read", "printf"}
)
_COMMAND = re.compile(r"^(/[\w./+-]+|[a-z0-9_][\w.+-]*)$")
_SHELL_MARKERS = ("&&", "||", " | ", "2>&1", "</dev/null", ">/dev/null")
_SUBPROCESS_CALLS = frozenset({"run", "Popen", "call", "check_call", "check_output", "system"})
_WHICH_CALLS = frozenset({"which", "find_program"})
_HOLE = "\x00"
"""Stands for a formatted value in an f-string."""


# --------------------------------------------------------------------------------------------
# Reading the source


@functools.cache
def _source_files() -> tuple[Path, ...]:
    """The benchmarks' Python files (not sslyze's virtualenv)."""
    out: list[Path] = []
    for directory, subdirs, files in os.walk(BENCHMARKS):
        subdirs[:] = [d for d in subdirs if not d.startswith(".venv-") and d != "__pycache__"]
        out += [Path(directory) / f for f in files if f.endswith(".py")]
    return tuple(sorted(out))


@functools.cache
def _source(path: Path) -> str:
    return path.read_text()


def _module_path(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _package_of(path: Path) -> list[str]:
    """The package a module is in (``__init__.py``: its own), for relative imports."""
    return list(path.relative_to(REPO).parent.parts)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function, attribute)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        for stmt in (
            getattr(node, "body", []) if isinstance(getattr(node, "body", None), list) else []
        ):
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                out.add(id(stmt.value))
    return out


def _exports(tree: ast.AST) -> set[int]:
    """ids of the lists assigned to ``__all__`` (names, not commands)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    }


def _linked(path: Path, tree: ast.AST) -> Iterator[Path]:
    """Benchmark modules ``path`` imports, and the scripts and ``-m`` modules it names."""
    package = _package_of(path)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = [*base, *(node.module.split(".") if node.module else [])]
            else:
                stem = (node.module or "").split(".")
            names = [".".join(stem)] + [".".join([*stem, a.name]) for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"benchmarks(\.\w+)+", node.value):
                names = [node.value]
            elif re.fullmatch(r"\w+\.py", node.value):
                yield from (p for p in _source_files() if p.name == node.value)
        for name in names:
            if name.split(".")[0] == "benchmarks" and (found := _module_path(name)):
                yield found


@functools.cache
def closure(module: str) -> frozenset[Path]:
    """The files of ``module`` and of every benchmark module or script it uses, transitively."""
    start = _module_path(module)
    assert start is not None, module
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen or path in MACHINERY:
            continue
        seen.add(path)
        todo.extend(_links(path))
    return frozenset(seen)


@functools.cache
def _links(path: Path) -> tuple[Path, ...]:
    return tuple(_linked(path, ast.parse(_source(path))))


def _text(node: ast.AST) -> str | None:
    """A string constant's value, or an f-string's with its holes as :data:`_HOLE`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else _HOLE for v in node.values)
    return None


def shell_commands(script: str) -> set[str]:
    """The programs a shell script runs: the first word of each pipeline segment."""
    cleaned = re.sub(r"\d?>&\d", " ", script)
    out: set[str] = set()
    for segment in re.split(r"&&|\|\||[|;&\n(){}]", cleaned):
        words = [w for w in segment.replace("'", " ").replace('"', " ").split() if w]
        words = [w for w in words if not re.match(r"^\d?[<>]", w) and "=" not in w[:1]]
        head = words[0] if words else _HOLE
        if _HOLE not in head and _COMMAND.match(head) and head not in SHELL_BUILTINS:
            out.add(Path(head).name)
    return out


def _looks_like_shell(text: str | None) -> bool:
    if text is None:
        return False
    return any(marker in text for marker in _SHELL_MARKERS) or text.rstrip().endswith("&")


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


@functools.cache
def programs_in(source: str) -> frozenset[str]:
    """Every external program ``source`` runs, as far as reading it can tell (see the header)."""
    tree = ast.parse(source)
    docs = _docstrings(tree) | _exports(tree)
    found: set[str] = set()
    loops: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension | ast.For) and isinstance(node.target, ast.Name):
            loops.setdefault(node.target.id, []).append(node.iter)
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts and id(node) not in docs:
            head = next((e for e in node.elts if not isinstance(e, ast.Starred)), None)
            word = _text(head) if head is not None else None
            if isinstance(node, ast.List) and word and _COMMAND.match(word):
                found.add(Path(word).name)
        elif isinstance(node, ast.Call) and node.args:
            name, first = _call_name(node), node.args[0]
            if name in _WHICH_CALLS:
                if (word := _text(first)) is not None:
                    found.add(word)
                elif isinstance(first, ast.Name):
                    for it in loops.get(first.id, []):
                        if isinstance(it, ast.List | ast.Tuple):
                            found.update(t for e in it.elts if (t := _text(e)) is not None)
            elif name in _SUBPROCESS_CALLS and (script := _text(first)) is not None:
                found |= shell_commands(script)  # a string, not an argv: run by a shell
            elif (
                name in _SUBPROCESS_CALLS
                and isinstance(first, ast.Tuple)
                and _COMMAND.match(word := _text(first.elts[0]) or "" if first.elts else "")
            ):
                found.add(Path(word).name)  # an argv tuple
        elif id(node) not in docs and _looks_like_shell(text := _text(node)):
            found |= shell_commands(text or "")
    return frozenset(found)


@functools.cache
def imports_in(source: str) -> frozenset[str]:
    """Top-level names of the absolute imports of ``source``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return frozenset(out)


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def project_distributions() -> frozenset[str]:
    """What ``pip install -e '.[test]'`` installs directly (the README's install)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return frozenset(_normalize(re.split(r"[<>=!~;\[ ]", s, maxsplit=1)[0]) for s in specs)


def third_party(names: Iterable[str]) -> set[str]:
    """The imported names that neither the standard library nor the project's install gives."""
    ours = project_distributions()
    dists = _distributions()
    return {
        n
        for n in names
        if n not in sys.stdlib_module_names
        and n not in {"__future__", "benchmarks", "chainscan"}
        and not any(_normalize(d) in ours for d in dists.get(n, []))
    }


def provided_programs(needs: Iterable[req.Need]) -> set[str]:
    return {p for n in needs if isinstance(n, req.Apt) for p in n.programs}


def provided_modules(needs: Iterable[req.Need]) -> set[str]:
    return {m.split(".")[0] for n in needs if isinstance(n, req.Pip | req.Venv) for m in n.modules}


def undeclared(files: Iterable[Path], needs: Iterable[req.Need]) -> tuple[set[str], set[str]]:
    """(programs, imported packages) used by ``files`` that ``needs`` do not provide."""
    needs = list(needs)
    sources = [_source(p) for p in files]
    programs = set().union(*(programs_in(s) for s in sources)) - NOT_NEEDS
    packages = third_party(set().union(*(imports_in(s) for s in sources)))
    return programs - provided_programs(needs), packages - provided_modules(needs)


# --------------------------------------------------------------------------------------------
# The scanner itself finds what it must (else the checks below could not fail)


SAMPLE = '''
"""A docstring that mentions grep -q x && echo ok, which is prose."""
import shutil, subprocess
import scapy.all
from trio import socket

SCRIPT = 'socat - TCP:"$1":"$2" </dev/null 2>&1 | grep -q ok && echo ok'

def f(prefix, args):
    subprocess.run(["tc", "qdisc", "add"], check=True)
    subprocess.run([*prefix, "ethtool", *args], check=True)
    subprocess.run("modprobe nfnetlink_queue", shell=True)
    subprocess.check_output(("ethtool", "-k", "eth0"))
    subprocess.Popen(("/usr/sbin/conntrack", "-L"))
    missing = [t for t in ("tcpdump", "ss") if shutil.which(t) is None]
    find_program("stunnel", ("stunnel4",))
    line = f"hping3 -S {args} >/dev/null 2>&1 &"
    return ["--flag", "x"], ("ec-2", "rsa-2")
'''


def test_the_scanner_finds_programs_in_argvs_which_calls_and_shell_strings() -> None:
    assert programs_in(SAMPLE) == {
        "tc", "ethtool", "modprobe", "tcpdump", "ss", "stunnel", "socat", "grep", "hping3",
        "conntrack",
    }  # fmt: skip


def test_the_scanner_finds_third_party_imports() -> None:
    assert third_party(imports_in(SAMPLE)) == {"scapy"}  # trio is the project's own dependency


def test_an_undeclared_program_or_package_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "new_scenario.py"
    script.write_text(SAMPLE)
    programs, packages = undeclared([script], [req.GNU_TIME, req.NGINX])
    assert "tc" in programs and "socat" in programs and packages == {"scapy"}
    declared = req.Apt(what="tc", packages=("iproute2",), programs=("tc",))
    assert "tc" not in undeclared([script], [declared])[0]


# --------------------------------------------------------------------------------------------
# The registry covers the entry points


def _main_modules() -> set[Path]:
    return {p for p in _source_files() if 'if __name__ == "__main__"' in p.read_text()}


def test_every_command_under_benchmarks_is_registered_or_started_by_one() -> None:
    registered = {_module_path(m) for m in req.ENTRY_POINTS}
    assert None not in registered
    reached = set().union(*(closure(m) for m in req.ENTRY_POINTS))
    setup = {BENCHMARKS / "setup.py"}
    orphans = _main_modules() - registered - reached - setup
    assert not orphans, f"add these to ENTRY_POINTS in benchmarks/_requirements.py: {orphans}"


@pytest.mark.parametrize("module", sorted(req.ENTRY_POINTS))
def test_each_entry_point_declares_every_program_and_package_it_uses(module: str) -> None:
    entry = req.ENTRY_POINTS[module]
    programs, packages = undeclared(closure(module), [*entry.needs, *entry.optional])
    programs -= NOT_RUN_BY.get(module, frozenset())
    assert not programs, f"{module} runs {sorted(programs)}: declare them in _requirements.py"
    assert not packages, f"{module} imports {sorted(packages)}: declare them in _requirements.py"


def test_the_scan_sees_the_programs_the_latency_scenario_is_known_to_run() -> None:
    files = closure("benchmarks.scenarios.latency")
    programs = set().union(*(programs_in(p.read_text()) for p in files))
    assert {"ip", "iptables", "cc", "nginx", "time"} <= programs


LIBC_HEADERS = frozenset(
    {"errno.h", "poll.h", "signal.h", "stdint.h", "stdio.h", "stdlib.h", "string.h", "time.h"}
    | {"unistd.h", "fcntl.h", "stddef.h", "stdbool.h", "limits.h", "inttypes.h"}
)
"""Headers of the C library (libc6-dev, which the C compiler need installs)."""
SYSTEM_HEADER_DIRS = frozenset({"arpa", "linux", "sys", "netinet", "net", "asm", "bits"})
"""Directories of the C library's and the kernel's headers (libc6-dev, linux-libc-dev)."""


def c_needs(files: Iterable[Path]) -> tuple[set[str], set[str]]:
    """(headers, libraries) that the C sources named in ``files`` include, or that their
    compile commands link (``-lNAME``), beyond the C library."""
    headers: set[str] = set()
    libraries: set[str] = set()
    for path in files:
        for text in _constants(_source(path)):
            libraries.update(re.findall(r"^-l(\w+)$", text))
            if re.fullmatch(r"\w+\.c", text):
                for c_file in BENCHMARKS.rglob(text):
                    headers.update(re.findall(r"#include\s*<([^>]+)>", c_file.read_text()))
    foreign = {
        h
        for h in headers
        if ("/" in h and h.split("/")[0] not in SYSTEM_HEADER_DIRS)
        or ("/" not in h and h not in LIBC_HEADERS)
    }
    return foreign, libraries


def _constants(source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


@pytest.mark.parametrize("module", sorted(req.ENTRY_POINTS))
def test_each_entry_point_declares_the_c_headers_and_libraries_it_builds_with(module: str) -> None:
    entry = req.ENTRY_POINTS[module]
    files = [f for n in entry.needs if isinstance(n, req.Apt) for f in n.files]
    headers, libraries = c_needs(closure(module))
    for header in headers:
        assert any(fnmatch.fnmatch(f"/usr/include/{header}", f) for f in files), header
    for library in libraries:
        assert any(f.endswith(f"/lib{library}.so") for f in files), library


def test_the_c_scan_sees_the_delayer_s_library() -> None:
    headers, libraries = c_needs(closure("benchmarks.scenarios.latency"))
    assert headers == {"libnetfilter_queue/libnetfilter_queue.h"}
    assert libraries == {"netfilter_queue", "nfnetlink"}


def test_every_runner_declares_its_tools() -> None:
    assert set(req.RUNNER_NEEDS) == set(RUNNERS), "a runner without an entry in RUNNER_NEEDS"
    core = req.ENTRY_POINTS["benchmarks.run"]
    for name, runner in RUNNERS.items():
        path = _module_path(runner.__module__)
        assert path is not None
        needs = [*req.RUNNER_NEEDS[name], *req.CORE_BASE, *core.optional]
        # Modules a runner shares with the others (_base, fleet) are the core run's own.
        programs, packages = undeclared(closure(runner.__module__) - _shared(), needs)
        assert not programs and not packages, (name, programs, packages)


def _shared() -> set[Path]:
    return closure("benchmarks.runners._base")


def test_the_setup_command_installs_every_need_of_every_entry_point() -> None:
    planned = set(bench_setup.needs_for(list(req.ENTRY_POINTS)))
    for entry in req.ENTRY_POINTS.values():
        assert {*entry.needs, *entry.optional} <= planned, entry.module
    assert set(req.everything()) == planned
    for need in planned:
        assert need.install_command(), need
        if isinstance(need, req.Apt):
            assert need.packages and (need.programs or need.files), need


def test_the_benchmark_readme_documents_the_setup_command_and_every_entry_point() -> None:
    readme = (BENCHMARKS / "README.md").read_text()
    assert req.SETUP_COMMAND in readme
    for module in req.ENTRY_POINTS:
        assert f"python -m {module}" in readme or f"python3 -m {module}" in readme, module


# --------------------------------------------------------------------------------------------
# What an entry point does when something is missing


GHOST = req.Apt(what="frobnicator", packages=("frobnicator-pkg",), programs=("frob-absent-x9",))


def test_a_missing_need_is_installed_with_apt_get_when_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(req.os, "geteuid", lambda: 0)
    monkeypatch.setattr(req.shutil, "which", lambda name: None if "frob" in name else "/bin/x")
    monkeypatch.setattr(req, "apt_install", lambda pkgs: calls.append(list(pkgs)) or False)
    with pytest.raises(req.MissingRequirement) as caught:
        req.require("benchmarks.scenarios.new", [req.NGINX, GHOST])
    assert calls == [["frobnicator-pkg"]]
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("benchmarks.scenarios.new: frobnicator is missing (frob-absent-x9)")
    assert "apt-get install -y frobnicator-pkg" in message and req.SETUP_COMMAND in message
    assert caught.value.need is GHOST


def test_without_root_nothing_is_installed_and_the_entry_point_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(req.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(req, "apt_install", lambda pkgs: pytest.fail("apt-get without root"))
    with pytest.raises(SystemExit) as caught:
        req.require_or_exit("benchmarks.x", [GHOST])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "frobnicator" in err and "apt-get install" in err


def test_nothing_is_installed_when_everything_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(req, "apt_install", lambda pkgs: pytest.fail("nothing to install"))
    present = req.Apt(what="sh", packages=("dash",), programs=("sh",))
    req.require("benchmarks.x", [present])
