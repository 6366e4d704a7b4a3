"""Ready results (``output._ready``): a batch planned away from the output folder (a Dask
worker) and written by ``OutputDir.write_ready`` gives the folder a local writer gives."""

from __future__ import annotations

import dataclasses
import errno
import os
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainscan._errors import OutputError
from chainscan._models import CertFormat, Fetch, ScanOptions, ScanResult
from chainscan.analysis._inventory import Inventory
from chainscan.manifest._model import JSONL_NAME
from chainscan.output import _output
from chainscan.output._output import OutputDir
from chainscan.output._ready import ReadyBatch, ReadyMaker, ReadySpec

from .pki import CA
from .test_output import RUN, Chain, failed, ok, target

TIMINGS = {"elapsed", "timings"}


@pytest.fixture(scope="module")
def chain() -> Chain:
    root = CA("chainscan ready root")
    inter = root.child_ca("chainscan ready intermediate")
    return Chain(root, inter, inter.issue("*.example.com", "example.com"))


@pytest.fixture
def trust(chain: Chain, tmp_path: Path) -> Path:
    path = tmp_path / "roots.pem"
    path.write_bytes(chain.root.pem)
    return path


def _results(chain: Chain) -> list[ScanResult]:
    fetched = Fetch(
        url="http://ca.example/inter.der", for_sha256="00" * 32, certs=(chain.inter.der,)
    )
    return [
        ok(chain.ders, target("a.example.com", line=1)),
        failed("down.example.com"),
        ok(chain.ders, target("b.example.com", line=3)),
        # the intermediate left out and fetched (AIA): a fetched/ folder
        dataclasses.replace(
            ok((chain.leaf.der,), target("c.example.com", line=4)), fetched=(fetched,)
        ),
    ]


def _folder(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith("manifest")
    }


def _lines(root: Path) -> list[dict[str, Any]]:
    found = []
    for line in (root / JSONL_NAME).read_bytes().splitlines():
        entry = orjson.loads(line)
        found.append({k: v for k, v in entry.items() if k not in TIMINGS})
        for cert in entry["chain"]:  # the validation time is read per entry: not compared
            assert cert["sha256"]
    return found


def _open(root: Path, options: ScanOptions) -> OutputDir:
    out = OutputDir(
        root, cert_format=options.cert_format, inventory=Inventory.from_options(options)
    )
    out.prepare()
    return out


@pytest.mark.parametrize("fmt", [CertFormat.DER, CertFormat.PEM])
def test_a_ready_batch_writes_the_folder_a_local_writer_writes(
    chain: Chain, trust: Path, tmp_path: Path, fmt: CertFormat
) -> None:
    options = ScanOptions(trust_store=str(trust), cert_format=fmt)
    results = _results(chain)
    local = _open(tmp_path / "local", options)
    local.write(results)
    local.close(run=RUN, complete=True)

    maker = ReadyMaker(ReadySpec.from_options(options))
    maker.add(results[:2])
    maker.add(results[2:])
    batch: ReadyBatch = pickle.loads(pickle.dumps(maker.batch))  # as Dask sends it
    remote = _open(tmp_path / "remote", options)
    echoed: list[bytes] = []
    remote.echo = echoed.append  # --jsonl: each line as it is appended
    assert remote.write_ready(batch) == [
        ("ok", None),
        ("failed", "refused"),
        ("ok", None),
        ("ok", None),
    ]
    remote.close(run=RUN, complete=True)

    assert _folder(tmp_path / "remote") == _folder(tmp_path / "local")
    assert any("/fetched/" in name for name in _folder(tmp_path / "local"))
    assert _lines(tmp_path / "remote") == _lines(tmp_path / "local")
    assert echoed == batch.lines
    assert remote.summary == local.summary
    # each distinct certificate crossed once: leaf, intermediate, root (shared by a and b)
    assert len(batch.blobs) == 3


def test_the_trust_store_travels_with_the_spec(chain: Chain, trust: Path) -> None:
    """A worker on another machine has no such file: the roots go as bytes, named as here."""
    spec = ReadySpec.from_options(ScanOptions(trust_store=str(trust)))
    trust.unlink()
    travelled: ReadySpec = pickle.loads(pickle.dumps(spec))
    maker = ReadyMaker(travelled)
    maker.add([ok(chain.ders)])
    entry = orjson.loads(maker.batch.lines[0])
    assert entry["trust"]["trusted"] is True
    assert entry["trust"]["store"] == str(trust)
    assert travelled.builder() is spec.builder()  # one builder (and cache) per process


def test_a_write_error_keeps_the_lines_before_it(
    chain: Chain, trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ScanOptions(trust_store=str(trust))
    maker = ReadyMaker(ReadySpec.from_options(options))
    maker.add(_results(chain)[:3])
    out = _open(tmp_path / "out", options)
    real = _output._write_file

    def full(folder: str, name: str, data: bytes) -> None:
        if "b.example.com" in folder:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(folder, name))
        real(folder, name, data)

    monkeypatch.setattr(_output, "_write_file", full)
    with pytest.raises(OutputError, match="no space left on device"):
        out.write_ready(maker.batch)
    out.close(run=RUN, complete=False)
    assert [entry["host"] for entry in _lines(tmp_path / "out")] == [
        "a.example.com",
        "down.example.com",
    ]
    assert out.summary["targets"] == 2


def test_a_batch_too_big_for_the_disk_keeps_the_lines_that_fit(
    chain: Chain, trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's one append fails: it is cut back, then the lines go one at a time and
    those that fit are kept and counted (as the thread writer keeps them)."""
    options = ScanOptions(trust_store=str(trust))
    maker = ReadyMaker(ReadySpec.from_options(options))
    maker.add(_results(chain)[:3])
    out = _open(tmp_path / "out", options)
    real = _output.write_fully
    capacity = len(maker.batch.lines[0]) + len(maker.batch.lines[1])  # two lines fit

    def small_disk(fd: int, data: bytes) -> None:
        room = capacity - os.fstat(fd).st_size
        if len(data) > room:
            real(fd, data[:room])  # a torn write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(_output, "write_fully", small_disk)
    with pytest.raises(OutputError, match="no space left on device"):
        out.write_ready(maker.batch)
    monkeypatch.setattr(_output, "write_fully", real)
    out.close(run=RUN, complete=False)
    assert [entry["host"] for entry in _lines(tmp_path / "out")] == [
        "a.example.com",
        "down.example.com",
    ]
    assert out.summary["targets"] == 2
