"""``chainscan report --json``: the report as one JSON object, for scripts and ``jq``. Pure.

The object holds what the terminal report shows, as data: ``counts`` (targets by status),
``problems`` (targets per problem code), ``issuers``, ``key_types``, ``verdicts``, every
certificate's expiry (``expiries``, soonest first, with the targets that send it) and one
``hosts`` row per target. Times are ISO 8601 UTC strings. Server text is not escaped here: JSON
strings carry any character safely, and the reader decides how to show them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from ._report import Report

__all__ = ["render_json"]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def render_json(report: Report) -> str:
    """The report as a JSON document (one object, ending in a newline)."""
    data = {
        "source": report.source,
        "generated": _plain(report.generated),
        "warn_days": report.warn_days,
        "analysed": report.analysed,
        "counts": report.counts,
        "problems": report.problems,
        "issuers": report.issuers,
        "key_types": report.key_types,
        "verdicts": report.verdicts,
        "expiries": [_plain(dataclasses.asdict(e)) for e in report.expiries],
        "hosts": [_plain(dataclasses.asdict(row)) for row in report.rows],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
