"""File and folder names: the KonySSLPinningTool convention, made safe against hostile input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainscan._models import Target
from chainscan.output._naming import (
    MAX_DIRNAME,
    cert_filename,
    is_reserved_windows_name,
    target_dirname,
)

SHA = "0123456789abcdef" * 4
WINDOWS_FORBIDDEN = set('<>:"/\\|?*')

# --------------------------------------------------------------------------------------------
# cert_filename: examples


@pytest.mark.parametrize(
    ("cn", "expected"),
    [
        ("www.example.com", "www_example_com.der"),
        ("*.example.com", "__example_com.der"),
        (
            "DigiCert Global G2 TLS RSA SHA256 2020 CA1",
            "DigiCert_Global_G2_TLS_RSA_SHA256_2020_CA1.der",
        ),
        ("bücher.example", "b_cher_example.der"),
        ("../../etc/passwd", "______etc_passwd.der"),
        ("CON", "CON_.der"),
        ("lpt9", "lpt9_.der"),
        ("COM10", "COM10.der"),
        (None, "sha256_0123456789abcdef.der"),
        ("", "sha256_0123456789abcdef.der"),
        ("...", "sha256_0123456789abcdef.der"),
        ("\u202e\u0000\n", "sha256_0123456789abcdef.der"),
    ],
)
def test_cert_filename_examples(cn: str | None, expected: str) -> None:
    assert cert_filename(cn, SHA, set(), "der") == expected


def test_cert_filename_pem_and_dot_extension() -> None:
    assert cert_filename("a.b", SHA, set(), "pem") == "a_b.pem"
    assert cert_filename("a.b", SHA, set(), ".pem") == "a_b.pem"


@pytest.mark.parametrize("ext", ["", "d/r", "..", "der\x00", "x" * 17])
def test_cert_filename_rejects_bad_extensions(ext: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        cert_filename("a", SHA, set(), ext)


def test_collisions_get_numbers_case_insensitively() -> None:
    taken: set[str] = set()
    names = [cert_filename(cn, SHA, taken, "der") for cn in ["a.b", "A.B", "a b", "a_b_2"]]
    assert names == ["a_b.der", "A_B_2.der", "a_b_3.der", "a_b_2_2.der"]
    assert taken == {name.lower() for name in names}


def test_long_cn_is_cut_and_collisions_stay_within_the_limit() -> None:
    taken: set[str] = set()
    first = cert_filename("x" * 10_000, SHA, taken, "der")
    second = cert_filename("x" * 10_000, SHA, taken, "der")
    assert first == "x" * 100 + ".der"
    assert second == "x" * 98 + "_2.der"


def test_reserved_names_match_windows() -> None:
    for name in ["CON", "con", "nul.txt", "Com1.x.y", "AUX", "prn.tar.gz", "LPT0"]:
        assert is_reserved_windows_name(name), name
    for name in ["CONSOLE", "con_", "x.con", "COM10", "nul_443"]:
        assert not is_reserved_windows_name(name), name


# --------------------------------------------------------------------------------------------
# cert_filename: properties

HOSTILE = st.one_of(
    st.none(),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=300),
    st.sampled_from(
        [
            "../../etc/passwd",
            "..",
            ".",
            "CON",
            "con",
            "Nul",
            "",
            "x" * 10_000,
            "a\x00b",
            "\x01\x1f\x7f",
            "\u202eexe.txt",
            "a/b\\c",
            "C:",
            "Example.COM",
            "example.com",
        ]
    ),
)


def assert_safe_file_name(name: str) -> None:
    assert name
    assert name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not any(ord(c) < 32 or ord(c) == 127 for c in name)
    assert not (set(name) & WINDOWS_FORBIDDEN)
    assert name.isascii()
    assert len(name.encode()) <= 255
    assert not name.endswith((".", " "))
    assert not is_reserved_windows_name(name)


@given(st.lists(HOSTILE, max_size=12), st.sampled_from(["der", "pem"]))
def test_cert_filenames_are_safe_and_unique(cns: list[str | None], ext: str) -> None:
    taken: set[str] = set()
    names = [cert_filename(cn, SHA, taken, ext) for cn in cns]
    folder = Path("/srv/out/example.com_443")
    for name in names:
        assert_safe_file_name(name)
        assert re.fullmatch(rf"[A-Za-z0-9_]{{1,100}}\.{ext}", name), name
        resolved = Path(os.path.normpath(os.path.join(folder, name)))
        assert resolved.parent == folder
    assert len({name.lower() for name in names}) == len(names)
    assert taken == {name.lower() for name in names}


@given(st.text(max_size=200))
def test_cert_filename_is_the_kony_convention_when_there_is_something_to_keep(cn: str) -> None:
    expected = re.sub(r"[^A-Za-z0-9]", "_", cn)[:100]
    name = cert_filename(cn, SHA, set(), "der")
    if (
        expected.strip("_")
        and expected.upper() not in {"CON", "PRN", "AUX", "NUL"}
        and not (re.fullmatch(r"(?i)(com|lpt)[0-9]", expected))
    ):
        assert name == expected + ".der"


# --------------------------------------------------------------------------------------------
# target_dirname


def t(host: str, port: int = 443, sni: str | None = "", address: str | None = None) -> Target:
    return Target(host=host, port=port, sni=host if sni == "" else sni, address=address)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (t("example.com"), "example.com_443"),
        (t("example.com", 8443), "example.com_8443"),
        (t("example.com", address="192.0.2.7"), "example.com_443_192.0.2.7"),
        (t("192.0.2.7", sni=None), "192.0.2.7_443"),
        (t("192.0.2.7", sni="example.com"), "192.0.2.7_443_sni_example.com"),
        (t("a.example", sni="b.example"), "a.example_443_sni_b.example"),
        (t("a.example", sni=None), "a.example_443_nosni"),
        (t("xn--bcher-kva.example"), "xn--bcher-kva.example_443"),
        (t("example.com."), "example.com._443"),
    ],
)
def test_target_dirname_readable(target: Target, expected: str) -> None:
    assert target_dirname(target) == expected


@pytest.mark.parametrize(
    ("target", "prefix"),
    [
        (t("::1", sni=None), "__1_443"),
        (t("2001:db8::1", 8443, sni=None), "2001_db8__1_8443"),
        (t("example.com", address="2001:db8::7"), "example.com_443_2001_db8__7"),
        (t("Example.com"), "Example.com_443"),
        (t("nul.example"), "nul_.example_443"),
        (t("a.example", sni="example.com."), "a.example_443_sni_example.com."),
        (t("a_b"), "a_b_443"),
        (t("a", address="nosni"), "a_443_nosni"),
    ],
)
def test_target_dirname_hashed_when_ambiguous(target: Target, prefix: str) -> None:
    name = target_dirname(target)
    assert re.fullmatch(re.escape(prefix) + r"~[0-9a-f]{8}", name), name


def test_target_dirname_long_names_are_cut() -> None:
    host = "a" * 63 + "." + "b" * 63 + "." + "c" * 63
    name = target_dirname(t(host))
    assert len(name) == MAX_DIRNAME
    assert re.fullmatch(r"a{63}\.b{47}~[0-9a-f]{8}", name), name
    assert target_dirname(t(host, 444)) != name


def test_readable_names_do_not_mix_up_markers() -> None:
    targets = [
        t("a", sni=None),
        t("a", address="nosni"),
        t("a", address="sni", sni="x"),
        t("a", sni="sni"),
        t("a", address="sni"),
        t("a", address="x", sni="sni"),
    ]
    names = [target_dirname(target) for target in targets]
    assert len(set(names)) == len(names), names


SMALL = st.text(alphabet="aA.:_-~s1on", max_size=5)
TARGETS = st.builds(
    Target,
    host=st.one_of(SMALL, st.sampled_from(["::1", "1.2.3.4", "sni", "nosni", "con.x"])),
    port=st.integers(min_value=0, max_value=3),
    sni=st.one_of(st.none(), SMALL, st.sampled_from(["sni", "nosni", "::1", "1.2.3.4"])),
    address=st.one_of(st.none(), SMALL, st.sampled_from(["sni", "nosni", "::1"])),
)


@given(st.lists(TARGETS, max_size=20, unique_by=lambda target: target.key))
def test_target_dirname_is_injective(targets: list[Target]) -> None:
    names = [target_dirname(target) for target in targets]
    assert len({name.lower() for name in names}) == len(names), names


@given(TARGETS)
def test_target_dirname_is_safe(target: Target) -> None:
    name = target_dirname(target)
    assert_safe_file_name(name)
    assert len(name) <= MAX_DIRNAME
    assert re.fullmatch(r"[A-Za-z0-9._-]+(~[0-9a-f]{8})?", name), name
    assert target_dirname(target) == name  # deterministic


@given(
    st.builds(
        Target,
        host=st.text(st.characters(codec=None, exclude_categories=()), max_size=400),
        port=st.integers(),
        sni=st.one_of(st.none(), st.text(max_size=300)),
        address=st.one_of(st.none(), st.text(max_size=50)),
    )
)
def test_target_dirname_is_safe_for_anything(target: Target) -> None:
    name = target_dirname(target)
    assert_safe_file_name(name)
    assert len(name) <= MAX_DIRNAME
    root = Path("/srv/out")
    assert Path(os.path.normpath(os.path.join(root, name))).parent == root
