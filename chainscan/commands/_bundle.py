"""``chainscan bundle OUT_OR_MANIFEST --kony-app WORKSPACE/APP``: scan results into a Kony app.

Carries out the iOS and Android steps of the Kony / Volt MX certificate pinning guide for every
host of a scan, instead of by hand:

* certificate pinning (default): the chosen certificates (``--pin leaf|intermediate|both``) are
  copied as DER into the four ``certs`` folders, and ``"allowbundledonly": true`` is set in
  ``resources/common/infoplist_configuration.json``;
* public-key pinning (``--public-keys``): ``public_keys.json`` (host -> base64 SPKI pins, the
  ``voltmx`` format of ``chainscan pins``) goes into the same folders, and the iOS switch
  (``KonyHTTPPublicKeyPinning``, or ``VoltMXHTTPPublicKeyPinning`` with ``--product voltmx``)
  is set instead.

The folders are::

    resources/mobile/native/iphone/certs              iPhone
    resources/tablet/native/ipad/certs                iPad
    resources/mobile/native/android/assets/certs      Android mobile
    resources/tablet/native/androidtab/assets/certs   Android tablet

Theory of operation
-------------------

The run is split in three so ``--dry-run`` shows exactly what a real run does:

1. *collect*: pick the hosts and certificates with ``_pins.plan_pins`` (same selection and
   warnings as ``chainscan pins``), read each certificate file the scan wrote, convert PEM to
   DER, and check its SHA-256 against the manifest (a file edited since the scan is refused).
   A certificate shared by several hosts (their common intermediate) is copied once.
2. *plan*: name each certificate as the scan names its files (``_naming.cert_filename``, the
   KonySSLPinningTool convention: subject CN, ``[A-Za-z0-9]`` kept, the rest ``_``; ``_2``,
   ``_3`` for different certificates with one name) and compute every file to write,
   comparing with what is on disk: ``new``, ``replace`` or ``unchanged``. JSON files are
   merged, never clobbered: ``infoplist_configuration.json`` keeps every other key,
   ``public_keys.json`` keeps the hosts this scan does not cover. A JSON file that does not
   parse stops the run before anything is written.
3. *apply*: create the folders and write each file through a temporary file and
   ``os.replace``. Every destination is checked to lie inside the app folder once symlinks are
   resolved, so nothing is ever written outside it (file names cannot hold a separator).

The Android build setting the guide also asks for (Project Settings > Native > Android >
Network Trust Config = Allow Pinned) lives in the IDE project, so it is printed as a next step.

This module is the pure core (plus the file reads of *collect* and *plan* and the writes of
*apply*); ``_bundle_cli`` parses the arguments and prints the plan. What earlier runs wrote is
tracked in ``.chainscan-bundle.json`` (``_bundle_track``): :func:`plan_bundle` compares it with
this run's writes, so stale files are named, and removed with ``--prune`` (a ``remove`` write).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._errors import OutputError, UsageError
from .._files import atomic_write
from ..analysis._analyze import pem_to_der_list
from ..output._naming import cert_filename
from ._bundle_track import Stale, Track, load, stale_files
from ._pins import PinPlan, PinWarning, format_warnings, voltmx_map

__all__ = [
    "CERT_DIRS",
    "INFOPLIST",
    "PIN_CHOICES",
    "BundlePlan",
    "BundledCert",
    "Write",
    "apply",
    "bundle_warnings",
    "collect_certs",
    "plan_bundle",
    "plan_writes",
]

CERT_DIRS: tuple[str, ...] = (
    "resources/mobile/native/iphone/certs",
    "resources/tablet/native/ipad/certs",
    "resources/mobile/native/android/assets/certs",
    "resources/tablet/native/androidtab/assets/certs",
)
"""The four ``certs`` folders of the guide, relative to the app folder."""

INFOPLIST = "resources/common/infoplist_configuration.json"
"""Key/value pairs Kony / Volt MX merge into the iOS Info.plist at build time."""

PUBLIC_KEYS = "public_keys.json"

PLIST_KEYS = {
    "certificates": "allowbundledonly",
    "kony": "KonyHTTPPublicKeyPinning",
    "voltmx": "VoltMXHTTPPublicKeyPinning",
}

PIN_CHOICES = {
    "leaf": ("leaf",),
    "intermediate": ("intermediate",),
    "both": ("leaf", "intermediate"),
}

_MAX_FILE = 1024 * 1024

State = Literal["new", "replace", "unchanged", "remove"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BundledCert:
    """A certificate to copy into the app."""

    sha256: str
    der: bytes
    role: str
    hosts: tuple[str, ...]
    cn: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One file the bundle writes (or would write)."""

    path: str
    """Relative to the app folder, with ``/``."""
    data: bytes
    state: State
    note: str


# --------------------------------------------------------------------------------------------
# 1. collect


def _read_der(root: Path, file: str, sha256: str | None) -> bytes:
    path = (root / file).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UsageError(f"{file}: outside the scan folder {root}; refused")
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            ders = pem_to_der_list(data)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        data = ders[0] if ders else data
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise UsageError(f"{path}: does not match the manifest's sha256 (changed since the scan?)")
    return data


def collect_certs(plan: PinPlan) -> list[BundledCert]:
    """The certificates of the pinned hosts whose role was asked for, one per SHA-256."""
    found: dict[str, BundledCert] = {}
    for host in plan.pinned:
        keys = {p.spki_sha256 for p in host.pins if not p.backup}
        for obs in host.observations:
            for cert in obs.chain:
                if cert.role not in plan.options.roles or cert.spki_sha256 not in keys:
                    continue
                if cert.file is None:
                    raise UsageError(f"{host.host}: {cert.label} has no file in the manifest")
                der = _read_der(Path(obs.root), cert.file, cert.sha256)
                digest = hashlib.sha256(der).hexdigest()
                known = found.get(digest)
                hosts = known.hosts if known is not None else ()
                if host.host not in hosts:
                    hosts += (host.host,)
                found[digest] = BundledCert(
                    sha256=digest, der=der, role=cert.role, hosts=hosts, cn=cert.cn
                )
    return sorted(found.values(), key=lambda c: (c.cn or "", c.sha256))


# --------------------------------------------------------------------------------------------
# 2. plan


def _existing(app: Path, rel: str) -> bytes | None:
    path = app / rel
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return handle.read(_MAX_FILE + 1)


def _state(old: bytes | None, new: bytes) -> State:
    if old is None:
        return "new"
    return "unchanged" if old == new else "replace"


def _load_json_object(app: Path, rel: str) -> tuple[dict[str, Any], bytes | None]:
    old = _existing(app, rel)
    if old is None or not old.strip():
        return {}, old
    try:
        value = json.loads(old.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"{app / rel}: not valid JSON ({exc}); fix or remove it first") from None
    if not isinstance(value, dict):
        raise OutputError(f"{app / rel}: not a JSON object; fix or remove it first")
    return value, old


def _json_bytes(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=4, ensure_ascii=False) + "\n").encode("utf-8")


def plan_infoplist(app: Path, key: str, remove: Sequence[str] = ()) -> Write:
    """Set ``key`` to true in infoplist_configuration.json, keeping every other key (but the
    ``remove`` keys, which an earlier run set and ``--prune`` takes back)."""
    config, old = _load_json_object(app, INFOPLIST)
    dropped = [k for k in remove if k in config and k != key]
    if config.get(key) is True and old is not None and not dropped:
        return Write(path=INFOPLIST, data=old, state="unchanged", note=f'"{key}": true')
    for name in dropped:
        del config[name]
    config[key] = True
    data = _json_bytes(config)
    note = f'"{key}": true' + "".join(f', "{k}" removed' for k in dropped)
    return Write(path=INFOPLIST, data=data, state=_state(old, data), note=note)


def plan_cert_writes(app: Path, certs: Sequence[BundledCert], extension: str) -> list[Write]:
    """Each certificate into each certs folder, named as the scan names its files."""
    taken: set[str] = set()
    names = [cert_filename(cert.cn, cert.sha256, taken, extension) for cert in certs]
    writes = []
    for folder in CERT_DIRS:
        for cert, name in zip(certs, names, strict=True):
            rel = f"{folder}/{name}"
            hosts = ", ".join(cert.hosts)
            note = f"{cert.role} {cert.cn or '-'} ({hosts})"
            writes.append(
                Write(
                    path=rel, data=cert.der, state=_state(_existing(app, rel), cert.der), note=note
                )
            )
    return writes


def plan_public_keys(
    app: Path, pins: dict[str, list[str]], drop: Sequence[str] = ()
) -> list[Write]:
    """``public_keys.json`` in each folder: these hosts' pins, the others kept (but ``drop``,
    hosts an earlier run wrote that ``--prune`` takes back)."""
    writes = []
    for folder in CERT_DIRS:
        rel = f"{folder}/{PUBLIC_KEYS}"
        current, old = _load_json_object(app, rel)
        current = {k: v for k, v in current.items() if k not in drop or k in pins}
        kept = [host for host in current if host not in pins]
        merged = {**current, **pins}
        data = _json_bytes(merged)
        note = f"{len(pins)} host entries" + (f", {len(kept)} others kept" if kept else "")
        writes.append(Write(path=rel, data=data, state=_state(old, data), note=note))
    return writes


# --------------------------------------------------------------------------------------------
# 3. apply


def _check_inside(app: Path, rel: str) -> Path:
    """``app/rel`` after making sure no existing part of it leads outside ``app``."""
    root = app.resolve()
    target = app / rel
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.resolve().is_relative_to(root):
        raise OutputError(f"{target}: leads outside the app folder {root} (symlink?); refused")
    return target


def apply(app: Path, writes: Sequence[Write]) -> None:
    """Write every changed file, creating folders, never outside ``app``."""
    for write in writes:
        _check_inside(app, write.path)
    for write in writes:
        if write.state == "unchanged":
            continue
        if write.state == "remove":
            _check_inside(app, write.path).unlink(missing_ok=True)
            continue
        target = _check_inside(app, write.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        _check_inside(app, write.path)
        atomic_write(target, write.data)


# --------------------------------------------------------------------------------------------
# The whole plan


def bundle_warnings(plan: PinPlan, public_keys: bool) -> tuple[PinWarning, ...]:
    """The pin warnings, worded for certificate bundling where ``--backup`` does not apply."""
    warnings = format_warnings(plan, "voltmx")
    if public_keys:
        return warnings
    return tuple(
        PinWarning(
            kind=w.kind,
            host=w.host,
            message="only 1 certificate bundled for it: with no second certificate (--pin "
            "both) a new key or a new issuing CA breaks the app until it is updated",
        )
        if w.kind == "too-few-pins"
        else w
        for w in warnings
    )


def plan_writes(
    app: Path, plan: PinPlan, *, public_keys: bool, product: str, cer: bool
) -> tuple[list[Write], str]:
    """Every file a bundle of ``plan`` writes into ``app``, and what it bundles (for people)."""
    if public_keys:
        writes = plan_public_keys(app, voltmx_map(plan))
        writes.append(plan_infoplist(app, PLIST_KEYS[product]))
        return writes, f"public-key pins of {len(plan.pinned)} hosts"
    certs = collect_certs(plan)
    writes = plan_cert_writes(app, certs, "cer" if cer else "der")
    writes.append(plan_infoplist(app, PLIST_KEYS["certificates"]))
    return writes, f"{len(certs)} certificates of {len(plan.pinned)} hosts"


@dataclass(frozen=True, slots=True, kw_only=True)
class BundlePlan:
    """Every file of a bundle run, what it bundles, and what earlier runs left behind."""

    writes: list[Write]
    """This run's files, then (``--prune``) the removals."""
    what: str
    stale: tuple[Stale, ...]
    """Files earlier runs wrote that this one does not."""
    old_settings: tuple[str, ...]
    """``infoplist_configuration.json`` keys earlier runs set that no longer apply."""
    old_hosts: tuple[str, ...]
    """``public_keys.json`` hosts earlier runs wrote that this one does not."""
    record: Track
    """What to remember after this run (written by the CLI after :func:`apply`)."""


def plan_bundle(
    app: Path, plan: PinPlan, *, public_keys: bool, product: str, cer: bool, prune: bool
) -> BundlePlan:
    """:func:`plan_writes`, compared with what earlier runs wrote (``_bundle_track``)."""
    track = load(app)
    key = PLIST_KEYS[product] if public_keys else PLIST_KEYS["certificates"]
    old_settings = tuple(k for k in track.settings if k != key)
    pins_map = voltmx_map(plan) if public_keys else {}
    old_hosts = tuple(h for h in track.public_key_hosts if h not in pins_map) if public_keys else ()
    if public_keys:
        writes = plan_public_keys(app, pins_map, old_hosts if prune else ())
        what = f"public-key pins of {len(plan.pinned)} hosts"
    else:
        certs = collect_certs(plan)
        writes = plan_cert_writes(app, certs, "cer" if cer else "der")
        what = f"{len(certs)} certificates of {len(plan.pinned)} hosts"
    writes.append(plan_infoplist(app, key, old_settings if prune else ()))
    stale = tuple(stale_files(app, track, (w.path for w in writes)))
    if prune:
        writes += [
            Write(path=item.path, data=b"", state="remove", note="stale: an earlier run wrote it")
            for item in stale
            if item.state == "prunable"
        ]
    kept = {item.path: item.sha256 for item in stale if item.state == "changed" or not prune}
    written = {
        w.path: hashlib.sha256(w.data).hexdigest()
        for w in writes
        if w.path != INFOPLIST and w.state != "remove"
    }
    if public_keys:
        hosts: tuple[str, ...] = (*pins_map, *(() if prune else old_hosts))
    else:
        hosts = () if prune else track.public_key_hosts
    record = Track(
        files={**kept, **written},
        settings=(key, *(() if prune else old_settings)),
        public_key_hosts=hosts,
    )
    return BundlePlan(
        writes=writes,
        what=what,
        stale=stale,
        old_settings=old_settings,
        old_hosts=old_hosts,
        record=record,
    )
