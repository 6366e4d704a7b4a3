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
