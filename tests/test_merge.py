"""``--shard K/N`` end to end, and ``chainscan merge OUT DIR...`` joining shard folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runs import manifest_rows
from tests.servers import ServerHandle
from tests.test_cli import FAST, chainscan

pytestmark = pytest.mark.integration


def _hosts(tmp_path: Path, port: int, refused: int) -> Path:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        "".join(f"n{i}.test:{port}{{127.0.0.1}}\n" for i in range(6))
        + "".join(f"s{i}.invalid\n" for i in range(8))
        + f"127.0.0.1:{refused}\nbad:0\n"
        + f"a.test:{port}{{127.0.0.1}}\n" * 2
    )
    return hosts


def test_shards_merge_into_the_same_scan_as_one_run(
    tls_server: ServerHandle, refused_port: int, tmp_path: Path
) -> None:
    hosts = _hosts(tmp_path, tls_server.port, refused_port)
    assert chainscan(str(hosts), "-o", str(tmp_path / "one"), *FAST).returncode == 1
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"part{k}"
        proc = chainscan(str(hosts), "-o", str(part), "--shard", f"{k}/3", *FAST)
        assert proc.returncode in (0, 1), proc.stderr
        assert json.loads((part / "manifest.json").read_text())["run"]["shard"] == f"{k}/3"
        parts.append(part)
    sizes = [len(manifest_rows(part)) for part in parts]
    assert sum(sizes) == 17 and sum(1 for size in sizes if size) >= 2  # split, nothing twice

    merged = tmp_path / "merged"
    proc = chainscan("merge", str(merged), *map(str, parts), parts[0].as_posix())
    assert proc.returncode == 0, proc.stderr
    assert f"{sizes[0]} duplicates dropped" in proc.stderr  # the folder given twice
    rows = manifest_rows(merged)
    assert len(rows) == len(set(rows)) == 17
    assert sorted(rows) == sorted(manifest_rows(tmp_path / "one"))
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["run"]["complete"] is True
    assert (
        manifest["summary"]
        == json.loads((tmp_path / "one" / "manifest.json").read_text())["summary"]
    )

    again = chainscan("merge", str(merged), str(parts[0]))
    assert again.returncode == 2 and "not empty" in again.stderr
    empty = chainscan("merge", str(tmp_path / "x"), str(tmp_path))
    assert empty.returncode == 2 and "holds no chainscan scan" in empty.stderr


def test_a_shard_resumes_with_the_same_targets(tls_server: ServerHandle, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"r{i}.invalid\n" for i in range(10)))
    out = tmp_path / "out"
    assert chainscan(str(hosts), "-o", str(out), "--shard", "2/2", *FAST).returncode == 1
    first = manifest_rows(out)
    hosts.write_text(hosts.read_text() + f"a.test:{tls_server.port}{{127.0.0.1}}\n")
    resumed = chainscan(str(hosts), "-o", str(out), "--shard", "2/2", "--resume", *FAST)
    assert resumed.returncode == 1, resumed.stderr
    rows = manifest_rows(out)
    assert rows[: len(first)] == first and len(rows) - len(first) in (0, 1)
    assert len({row[1] for row in rows}) == len(rows)


def test_scale_out_options_are_checked() -> None:
    proc = chainscan("x.txt", "--shard", "3/2")
    assert proc.returncode == 2 and "out of range 1-2" in proc.stderr
    proc = chainscan("x.txt", "--dask", "local:0")
    assert proc.returncode == 2 and "local:N needs N >= 1" in proc.stderr
    proc = chainscan("x.txt", "--dask", "local:2", "--workers", "2")
    assert proc.returncode == 2 and "exclude each other" in proc.stderr


def _labelled(folder: Path, shard: str | None, *, finished: bool = True) -> Path:
    """A scan folder with an empty manifest, its run marked as ``shard`` (None: unsharded)."""
    folder.mkdir(parents=True)
    (folder / "manifest.jsonl").write_text("")
    if finished:
        header = json.dumps({"run": {"shard": shard, "complete": True}})
        (folder / "manifest.json").write_text(header[:-1] + ',"targets":[\n]}\n')
    return folder


def test_missing_shards_are_those_of_one_split_no_finished_folder_holds(tmp_path: Path) -> None:
    from chainscan.commands._merge_sources import missing_shards, scan_folders

    one, three = _labelled(tmp_path / "s/a", "1/3"), _labelled(tmp_path / "s/b", "3/3")
    assert missing_shards([one, three]) == ["2/3"]
    assert missing_shards([one, three, _labelled(tmp_path / "s/c", "2/3")]) == []
    running = _labelled(tmp_path / "s/d", None, finished=False)  # no manifest.json yet
    assert missing_shards([one, running]) == ["2/3", "3/3"]
    assert missing_shards([one, _labelled(tmp_path / "whole", None)]) == []  # not a split
    assert missing_shards([one, _labelled(tmp_path / "other", "1/2")]) == []  # two splits
    (tmp_path / "s" / "empty").mkdir()
    (tmp_path / "s" / "file").write_text("")
    assert scan_folders(tmp_path / "s", tmp_path / "s" / "a") == [
        tmp_path / "s/d",  # no shard: first, then by shard
        one.parent / "c",
        three,
    ]
