"""The recipes of ``docs/scale-out.md`` run as written: the Kubernetes indexed Job (``--shard
auto``), the merge Job, and the crontab for three hosts, each against a loopback fleet, each
ending in a folder equal to a single run's.

What a cluster would do is done here by hand, and only that:

* **A pod** is the container's ``command`` + ``args`` from the doc's YAML, run as a process
  with the pod's environment: the container's ``env``, ``JOB_COMPLETION_INDEX`` (0 to
  ``completions - 1``, as the Job controller sets it) and Kubernetes' ``$(VAR)`` expansion
  of the arguments. Each ``volumeMounts`` path is mapped to a temporary folder (the ConfigMap
  folder holds ``hosts.txt``, the claim is shared by every pod). The pods of the Job run at
  once (``parallelism`` is the count here); then one index runs again, as a replacement pod
  would.
* **cron** runs each crontab line's command with ``sh`` after turning ``\\%`` into ``%``;
  ``/srv/scans`` is mapped to a temporary folder.

``chainscan`` in those commands is a two-line shim on ``PATH`` that runs this checkout's
``python -m chainscan``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PKI
from tests.runs import certificate_files, entries_by_line, manifest_rows
from tests.servers import TLSServer, refused_port
from tests.test_cli import FAST, chainscan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "scale-out.md"
TIMEOUT = 180
AUTO = ["--shard", "auto", *FAST]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)


def _jobs() -> dict[str, dict[str, Any]]:
    """The doc's Job manifests, by name."""
    jobs = {}
    for block in _blocks("yaml"):
        for document in yaml.safe_load_all(block):
            if document and document.get("kind") == "Job":
                jobs[document["metadata"]["name"]] = document
    return jobs


@pytest.fixture
def fleet(pki: PKI, tmp_path: Path) -> Iterator[Path]:
    """hosts.txt: TLS targets on four loopback addresses (a shard is chosen by address), names
    that do not resolve (by name), a refused port, invalid lines and a duplicate."""
    with contextlib.ExitStack() as stack:
        lines = []
        for k in range(1, 5):
            address = f"127.0.0.{k}"
            port = stack.enter_context(TLSServer(pki.chains, address)).port
            lines += [f"{name}:{port}{{{address}}}" for name in ("a.test", "b.test", f"n{k}.test")]
        lines += [f"s{i}.invalid" for i in range(8)]
        lines += [f"closed.test:{refused_port()}{{127.0.0.1}}", "bad:0", "exa mple.test"]
        lines.append(lines[0])
        hosts = tmp_path / "hosts.txt"
        hosts.write_text("\n".join(lines) + "\n")
        yield hosts


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a pod or a cron job: ``chainscan`` on PATH runs this checkout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "chainscan"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m chainscan "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JOB_COMPLETION_INDEX", None)
    env.pop("CHAINSCAN_SHARD_COUNT", None)
    return env


def _mapped(text: str, mounts: Mapping[str, Path]) -> str:
    for mount, folder in mounts.items():
        text = re.sub(rf"(?<![\w/.]){re.escape(mount)}(?=[/\s\"']|$)", str(folder), text)
    return text


def _kubernetes_expand(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` in command and args: the variable's value if the container has it, else
    left as written; ``$$`` is a literal ``$`` (Kubernetes' rules)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]),
        text,
    )


def _pod(
    job: dict[str, Any], index: int | None, mounts: Mapping[str, Path], env: dict[str, str]
) -> subprocess.Popen[str]:
    """Start the container of ``job``'s pod ``index`` (None: a Job that is not indexed)."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    pod_env = {**env, **{item["name"]: item["value"] for item in container.get("env", [])}}
    if index is not None:
        pod_env["JOB_COMPLETION_INDEX"] = str(index)
    mount_paths = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert mount_paths == set(mounts), mount_paths
    argv = [
        _mapped(_kubernetes_expand(arg, pod_env), mounts)
        for arg in [*container["command"], *container.get("args", [])]
    ]
    return subprocess.Popen(argv, env=pod_env, stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen[str]) -> str:
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr  # a pod that succeeded
    return stderr


def _assert_same_scan(folder: Path, single: Path) -> None:
    rows = manifest_rows(folder)
    assert len(rows) == len(set(rows))  # each target once
    assert sorted(rows) == sorted(manifest_rows(single))
    assert certificate_files(folder) == certificate_files(single)  # byte for byte
    assert entries_by_line(folder) == entries_by_line(single)  # field for field, but timings
    header = json.loads((folder / "manifest.json").read_text())
    assert header["summary"] == json.loads((single / "manifest.json").read_text())["summary"]
    assert header["run"]["complete"] is True


def _single_run(hosts: Path, out: Path) -> Path:
    proc = chainscan(str(hosts), "-o", str(out), "-q")
    assert proc.returncode == 1, proc.stderr  # failures and invalid lines: exit 1
    return out


def test_the_kubernetes_recipe_shards_then_merges_into_a_single_runs_folder(
    fleet: Path, shell_env: dict[str, str], tmp_path: Path
) -> None:
    jobs = _jobs()
    shards, merge = jobs["chainscan-shards"], jobs["chainscan-merge"]
    spec = shards["spec"]
    assert spec["completionMode"] == "Indexed"
    count = spec["completions"]
    (container,) = spec["template"]["spec"]["containers"]
    assert {"name": "CHAINSCAN_SHARD_COUNT", "value": str(count)} in container["env"]

    config, scans = tmp_path / "config", tmp_path / "scans"
    config.mkdir()
    scans.mkdir()
    (config / "hosts.txt").write_text(fleet.read_text())  # the ConfigMap's key
    mounts = {"/config": config, "/scans": scans}
    pods = [_pod(shards, index, mounts, shell_env) for index in range(count)]  # all at once
    for pod in pods:
        _finished(pod)
    folders = sorted((scans / "shards").iterdir())
    assert [folder.name for folder in folders] == [f"shard-{i}" for i in range(count)]
    sizes = []
    for index, folder in enumerate(folders):
        header = json.loads((folder / "manifest.json").read_text())
        assert header["run"]["shard"] == f"{index + 1}/{count}"
        sizes.append(header["summary"]["targets"])
    assert sum(1 for size in sizes if size) >= 3  # the split spread the fleet

    before = (folders[1] / "manifest.jsonl").read_bytes()
    _finished(_pod(shards, 1, mounts, shell_env))  # a replacement pod: resumes, adds nothing
    assert (folders[1] / "manifest.jsonl").read_bytes() == before

    _finished(_pod(merge, None, {"/scans": scans}, shell_env))
    single = _single_run(config / "hosts.txt", tmp_path / "single")  # input.source: the same
    _assert_same_scan(scans / "merged", single)
    merged = json.loads((scans / "merged" / "manifest.json").read_text())
    assert merged["run"]["merged"] == [str(folder) for folder in folders]  # in shard order


def test_the_cron_recipe_runs_as_cron_would(
    fleet: Path, shell_env: dict[str, str], tmp_path: Path
) -> None:
    (block,) = _blocks("crontab")
    commands = [
        line.split(None, 5)[5].replace("\\%", "%")
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(commands) == 4 and "chainscan merge" in commands[-1]
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "hosts.txt").write_text(fleet.read_text())
    for command in commands:
        proc = subprocess.run(
            ["sh", "-c", _mapped(command, {"/srv/scans": srv})],
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert proc.returncode in (0, 1), proc.stderr  # 1: some targets failed
    (merged,) = (folder for folder in srv.iterdir() if folder.name.endswith("-merged"))
    _assert_same_scan(merged, _single_run(srv / "hosts.txt", tmp_path / "single"))


def test_merge_names_the_shards_a_shared_folder_lacks(
    fleet: Path, shell_env: dict[str, str], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    for k in (1, 3):
        env = {**shell_env, "JOB_COMPLETION_INDEX": str(k - 1), "CHAINSCAN_SHARD_COUNT": "3"}
        proc = subprocess.run(
            [sys.executable, "-m", "chainscan", str(fleet), "-o", str(shared / f"s{k}"), *AUTO],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert proc.returncode in (0, 1), proc.stderr
    (shared / "not-started").mkdir()  # a pod's folder with nothing in it yet: passed over
    proc = chainscan("merge", str(tmp_path / "merged"), "--shards", str(shared))
    assert proc.returncode == 0, proc.stderr
    assert "no folder holds shard 2/3 (merged 2 folders)" in proc.stderr
    header = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert header["run"]["complete"] is False
    assert header["run"]["merged"] == [str(shared / "s1"), str(shared / "s3")]

    empty = chainscan("merge", str(tmp_path / "x"), "--shards", str(shared / "not-started"))
    assert empty.returncode == 2 and "holds no folder with a chainscan scan" in empty.stderr
    nothing = chainscan("merge", str(tmp_path / "x"))
    assert nothing.returncode == 2 and "DIR... and/or --shards FOLDER" in nothing.stderr


def test_shard_auto_errors_end_the_run_before_it_starts(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("a.invalid\n")
    for env, message in (
        ({}, "JOB_COMPLETION_INDEX, which is not set"),
        ({"JOB_COMPLETION_INDEX": "0"}, "set CHAINSCAN_SHARD_COUNT to the Job's spec.completions"),
        ({"JOB_COMPLETION_INDEX": "4", "CHAINSCAN_SHARD_COUNT": "4"}, "out of range for 4"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "chainscan", str(hosts), "-o", str(tmp_path / "out"), *AUTO],
            env={**shell_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "out").exists()  # refused before any folder or connection
