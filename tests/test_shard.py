"""``--shard K/N`` (pure parts): parsing, and every item lands in exactly one shard."""

from __future__ import annotations

import pytest

from chainscan._models import BadLine, Target
from chainscan.run._partition import shard_of
from chainscan.run._shard import Shard, parse_shard, select_shard


def test_parse_shard_accepts_k_of_n_and_names_the_problem() -> None:
    assert parse_shard("2/8") == Shard(2, 8)
    assert str(parse_shard("1/1")) == "1/1"
    for text, message in (
        ("0/4", "out of range 1-4"),
        ("5/4", "out of range 1-4"),
        ("3", "expected K/N"),
        ("a/b", "expected K/N"),
        ("1/0", "expected K/N"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_shard(text)


def test_every_target_is_in_exactly_one_shard_and_bad_lines_in_the_first() -> None:
    items: list[Target | BadLine] = [
        Target(host=f"h{i}.example", port=443 + i % 3, sni=f"h{i}.example") for i in range(300)
    ]
    items.append(Target(host="x.example", port=443, sni="x.example", address="192.0.2.7"))
    items.append(BadLine(source="f", line=9, raw="bad:0", reason="port"))
    shards = [list(select_shard(items, Shard(k, 4))) for k in range(1, 5)]
    assert sorted(id(item) for shard in shards for item in shard) == sorted(map(id, items))
    assert all(len(shard) > 30 for shard in shards)  # the hash spreads them
    assert any(isinstance(item, BadLine) for item in shards[0])
    for k, shard in enumerate(shards):
        for item in shard:
            if isinstance(item, Target):
                assert shard_of(item, 4) == k
    assert list(select_shard(items, None)) == items


def test_a_shard_follows_the_named_address_not_the_line_order() -> None:
    one = Target(host="a.example", port=443, sni="a.example", address="192.0.2.7", line=1)
    two = Target(host="b.example", port=8443, sni="b.example", address="192.0.2.7", line=900)
    shard = Shard(shard_of(one, 5) + 1, 5)
    assert shard.holds(one) and shard.holds(two)  # one address, one host: --per-ip holds


def test_shard_auto_reads_a_kubernetes_indexed_job() -> None:
    env = {"JOB_COMPLETION_INDEX": "0", "CHAINSCAN_SHARD_COUNT": "3"}
    assert parse_shard("auto", env) == Shard(1, 3)  # the index is 0-based, K 1-based
    assert parse_shard("auto", {**env, "JOB_COMPLETION_INDEX": "2"}) == Shard(3, 3)
    assert parse_shard("auto/3", env) == Shard(1, 3)
    assert parse_shard("AUTO/5", {"JOB_COMPLETION_INDEX": "4"}) == Shard(5, 5)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("auto", {"CHAINSCAN_SHARD_COUNT": "3"}, "JOB_COMPLETION_INDEX, which is not set"),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}, "set CHAINSCAN_SHARD_COUNT to the Job's"),
        ("auto", {"JOB_COMPLETION_INDEX": "-1", "CHAINSCAN_SHARD_COUNT": "3"}, "not a whole"),
        ("auto", {"JOB_COMPLETION_INDEX": "x", "CHAINSCAN_SHARD_COUNT": "3"}, "not a whole"),
        ("auto", {"JOB_COMPLETION_INDEX": "1", "CHAINSCAN_SHARD_COUNT": "0"}, "not a number of"),
        ("auto", {"JOB_COMPLETION_INDEX": "1", "CHAINSCAN_SHARD_COUNT": "3.0"}, "not a number"),
        ("auto", {"JOB_COMPLETION_INDEX": "3", "CHAINSCAN_SHARD_COUNT": "3"}, r"range .* \(0-2\)"),
        ("auto/2", {"JOB_COMPLETION_INDEX": "0", "CHAINSCAN_SHARD_COUNT": "3"}, "disagrees"),
        ("auto/0", {"JOB_COMPLETION_INDEX": "0"}, "auto/N with N >= 1"),
        ("auto/", {"JOB_COMPLETION_INDEX": "0"}, "auto/N with N >= 1"),
    ],
)
def test_shard_auto_names_the_missing_or_bad_variable(
    text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text, env)
