"""``chainscan report``: a scan's manifest entries -> a summary for the terminal or one HTML page.

Pure: entries and a clock in, text out. :func:`build_report` reduces the entries to the
numbers a person asks about first (how many targets are fine, which problem codes occur and
where, what expires next, which hosts are untrusted or answer for another name, who issues
our certificates and with which keys); :func:`render_text` and :func:`render_html` lay them out.

The HTML page is self-contained: inline CSS, an inline SVG chart drawn here (no charting
library), and a small inline script that sorts the host table and, once it has run, sets
``data-ready="1"`` on ``<html>`` (``data-error`` if a script error happened), which is what the
headless-browser test waits for. A Content-Security-Policy ``<meta>`` forbids every fetch, so
the page works offline and cannot leak a host name to anyone. Every text from the manifest is
HTML-escaped; the JSON island is escaped for ``<script>`` too.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .._models import WARN_DAYS, CertFacts
from .._untrusted import terminal_safe
from ..analysis._problems import PROBLEMS
from ..manifest._model import Completion, ManifestEntry
from ._common import text_table
from ._diff import target_label

__all__ = ["HostRow", "Report", "build_report", "render_html", "render_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRow:
    """One target, as the host table shows it."""

    target: str
    host: str
    status: str
    error_kind: str | None = None
    trusted: bool | None = None
    trust_reason: str | None = None
    hostname_matches: bool | None = None
    name: str | None = None
    leaf_cn: str | None = None
    leaf_sans: tuple[str, ...] = ()
    issuer: str | None = None
    key: str | None = None
    not_after: dt.datetime | None = None
    problems: tuple[str, ...] = ()
    deployments: str | None = None
    completed: bool | None = None
    """``completion.trusted``: the chain with the fetched intermediates (None: none fetched)."""
    completion_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Expiry:
    """One certificate and the targets that send it."""

    not_after: dt.datetime
    role: str
    name: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    source: str
    generated: dt.datetime
    warn_days: int
    rows: tuple[HostRow, ...]
    counts: dict[str, int]
    problems: dict[str, int]
    """Targets per problem code, in the documented order."""
    expiries: tuple[Expiry, ...]
    """Every certificate sent, soonest expiry first."""
    issuers: dict[str, int] = field(default_factory=dict)
    key_types: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    """``--deployments`` verdicts, when the scan had them."""
    analysed: bool = True
    """False when no entry has inventory fields (a scan made before they existed)."""


def _key(facts: CertFacts) -> str | None:
    kind = facts.key_type or None
    if kind is None:
        return None
    if kind == "EC" and facts.curve:
        return f"EC {facts.curve}"
    return f"{kind} {facts.key_size}" if facts.key_size is not None else kind


def _issuer_cn(issuer: str | None) -> str | None:
    if issuer is None:
        return None
    parts = [p.split("=", 1)[1] for p in issuer.split(",") if p.startswith("CN=")]
    return parts[0] if parts else issuer


def _row(entry: ManifestEntry) -> HostRow | None:
    key = entry.key
    if key is None:
        return None
    leaf = entry.chain[0] if entry.chain else None
    trust, hostname = entry.trust, entry.hostname
    return HostRow(
        target=target_label(key),
        host=key[3] or key[0],
        status=str(entry.status),
        error_kind=entry.error_kind or None,
        trusted=None if trust is None else trust.trusted,
        trust_reason=None if trust is None else trust.reason or None,
        hostname_matches=None if hostname is None else hostname.matches,
        name=None if hostname is None else hostname.name or None,
        leaf_cn=None if leaf is None else leaf.facts.cn or None,
        leaf_sans=() if leaf is None else leaf.facts.sans,
        issuer=None if leaf is None else _issuer_cn(leaf.facts.issuer),
        key=None if leaf is None else _key(leaf.facts),
        not_after=None if leaf is None else leaf.expires,
        problems=entry.problem_codes,
        deployments=None if entry.deployments is None else entry.deployments.verdict or None,
        completed=None if entry.completion is None else entry.completion.trusted,
        completion_reason=None if entry.completion is None else _completion_text(entry.completion),
    )


def _completion_text(completion: Completion) -> str:
    if completion.trusted is True:
        fetched = "; ".join(f"{subject} from {url}" for subject, url in completion.added)
        return f"trusted once completed (browsers); the server should send {fetched}"
    errors = "; ".join(f"{url}: {error}" for url, error in completion.errors)
    reason = completion.reason or "not trusted"
    return f"still untrusted after fetching: {reason}" + (f" ({errors})" if errors else "")


def build_report(
    entries: Iterable[ManifestEntry],
    *,
    source: str = "",
    now: dt.datetime | None = None,
    warn_days: int = WARN_DAYS,
) -> Report:
    """Reduce a scan's entries (invalid lines are counted, not listed)."""
    moment = now or dt.datetime.now(dt.UTC)
    rows: list[HostRow] = []
    counts: Counter[str] = Counter()
    problem_targets: Counter[str] = Counter()
    issuers: Counter[str] = Counter()
    key_types: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    certs: dict[str, tuple[dt.datetime, str, str, list[str]]] = {}
    analysed = False
    chains = 0
    for entry in entries:
        counts["targets"] += 1
        counts[str(entry.status)] += 1
        row = _row(entry)
        if row is None:
            continue
        rows.append(row)
        analysed = analysed or entry.analysed
        chains += row.status == "ok"
        for code in row.problems:
            problem_targets[code] += 1
        if row.status != "ok":
            continue
        counts[
            "trusted" if row.trusted else "untrusted" if row.trusted is False else "unknown"
        ] += 1
        if row.hostname_matches is False:
            counts["mismatched"] += 1
        if row.issuer:
            issuers[row.issuer] += 1
        if row.key:
            key_types[row.key] += 1
        if row.deployments:
            verdicts[row.deployments] += 1
        for cert in entry.chain:
            not_after = cert.expires
            digest = str(cert.facts.sha256)
            if not_after is None:
                continue
            known = certs.setdefault(digest, (not_after, cert.role, cert.display_name("?"), []))
            if row.target not in known[3]:
                known[3].append(row.target)
    horizon = moment + dt.timedelta(days=warn_days)
    counts["expiring"] = sum(1 for r in rows if r.not_after and moment <= r.not_after <= horizon)
    counts["expired"] = sum(1 for r in rows if r.not_after and r.not_after < moment)
    expiries = sorted(
        (
            Expiry(not_after=na, role=role, name=name, targets=tuple(targets))
            for na, role, name, targets in certs.values()
        ),
        key=lambda e: (e.not_after, e.name),
    )
    order = list(PROBLEMS)
    return Report(
        source=source,
        generated=moment,
        warn_days=warn_days,
        rows=tuple(rows),
        counts=dict(counts),
        problems={
            code: problem_targets[code]
            for code in sorted(
                problem_targets, key=lambda c: (order.index(c) if c in order else 99, c)
            )
        },
        expiries=tuple(expiries),
        issuers=dict(issuers.most_common()),
        key_types=dict(key_types.most_common()),
        verdicts=dict(verdicts.most_common()),
        analysed=analysed or chains == 0,  # no chain at all: nothing was left unanalysed
    )


def _days(moment: dt.datetime, now: dt.datetime) -> int:
    """Whole days left; once expired, minus the whole days since."""
    return (moment - now).days if moment >= now else -(now - moment).days


def _when(moment: dt.datetime, now: dt.datetime) -> str:
    days = _days(moment, now)
    if moment < now:
        return f"expired {-days} days ago"
    return f"in {days} days"


# --------------------------------------------------------------------------------------------
# Terminal


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    return text_table(rows, indent="  ")


def _grouped_reasons(rows: Sequence[HostRow], shown: int = 5) -> list[str]:
    """``target  reason`` for a reason of one target; a reason shared by several is printed
    once, with its targets (the first ``shown`` of them and how many more)."""
    by_reason: dict[str, list[str]] = {}
    for row in rows:
        by_reason.setdefault(row.trust_reason or "-", []).append(row.target)
    single = [(targets[0], reason) for reason, targets in by_reason.items() if len(targets) == 1]
    lines = _columns(single)
    for reason, targets in by_reason.items():
        if len(targets) > 1:
            more = f" +{len(targets) - shown}" if len(targets) > shown else ""
            lines.append(f"  {reason}")
            lines.append(f"    {len(targets)} targets: {', '.join(targets[:shown])}{more}")
    return lines


def render_text(report: Report, *, top: int = 10) -> str:
    c = report.counts
    lines = [
        f"chainscan report: {terminal_safe(report.source)}",
        f"  {c.get('targets', 0)} targets: {c.get('ok', 0)} ok, {c.get('failed', 0)} failed, "
        f"{c.get('invalid', 0)} invalid",
    ]
    if not report.analysed:
        lines.append(
            "  (this scan has no trust or problem data: scan again with this chainscan version)"
        )
    else:
        lines.append(
            f"  chains: {c.get('trusted', 0)} trusted, {c.get('untrusted', 0)} untrusted, "
            f"{c.get('mismatched', 0)} for another name; leaves: {c.get('expired', 0)} expired, "
            f"{c.get('expiring', 0)} expiring within {report.warn_days} days"
        )
    if report.verdicts:
        lines.append("  deployments: " + ", ".join(f"{n} {v}" for v, n in report.verdicts.items()))
    lines += ["", "problems (targets):"]
    if report.problems:
        lines += _columns(
            [(code, PROBLEMS.get(code, ("?",))[0], str(n)) for code, n in report.problems.items()]
        )
    else:
        lines.append("  none")
    lines += ["", f"soonest expiries (first {top}):"]
    rows = []
    for expiry in report.expiries[:top]:
        more = f" +{len(expiry.targets) - 1}" if len(expiry.targets) > 1 else ""
        rows.append(
            (
                f"{expiry.not_after:%Y-%m-%d}",
                _when(expiry.not_after, report.generated),
                expiry.role,
                expiry.name,
                f"{expiry.targets[0]}{more}",
            )
        )
    lines += _columns(rows) or ["  none"]
    untrusted = [r for r in report.rows if r.status == "ok" and r.trusted is False]
    lines += ["", f"untrusted ({len(untrusted)}):"]
    lines += _grouped_reasons(untrusted) or ["  none"]
    completed = [r for r in report.rows if r.completed is not None]
    if completed:  # only scans that fetched a missing intermediate have this section
        lines += ["", f"missing intermediates fetched (AIA) ({len(completed)}):"]
        lines += _columns([(r.target, r.completion_reason or "-") for r in completed])
    mismatched = [r for r in report.rows if r.status == "ok" and r.hostname_matches is False]
    lines += ["", f"hostname mismatch ({len(mismatched)}):"]
    lines += _columns(
        [
            (r.target, f"{r.name} not in {', '.join(r.leaf_sans) or '(no subjectAltName)'}")
            for r in mismatched
        ]
    ) or ["  none"]
    failed = [r for r in report.rows if r.status != "ok"]
    if failed:
        lines += ["", f"failed ({len(failed)}):"]
        lines += _columns([(r.target, r.error_kind or "-") for r in failed])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; --line: #d0d7de; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 120rem;
       padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem; min-width: 7rem; }
.card b { display: block; font-size: 1.4rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #f6f8fa; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.badge { display: inline-block; border-radius: 1em; padding: 0 .55em; margin: 0 .2em .2em 0;
         font-size: 12px; border: 1px solid; white-space: nowrap; }
.error { color: var(--bad); border-color: var(--bad); }
.warning { color: var(--warn); border-color: var(--warn); }
.yes { color: var(--ok); } .no { color: var(--bad); }
.nowrap { white-space: nowrap; } .scroll { overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 1.5rem; }
.bar { background: #0969da; height: .7rem; display: inline-block; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #1f2328; }
"""

_SCRIPT = """
(function () {
  "use strict";
  window.addEventListener("error", function () {
    document.documentElement.setAttribute("data-error", "1");
  });
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    var n = Number(v);
    return (v !== "" && !isNaN(n)) ? n : v.toLowerCase();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[column]), y = key(b.cells[column]);
          var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0)
                                              : (typeof x === "number" ? -1 : 1);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  var data = JSON.parse(document.getElementById("report-data").textContent);
  document.getElementById("host-count").textContent = String(data.hosts.length);
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _yes_no(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return '<td data-sort="2" class="muted">-</td>'
    return f'<td data-sort="{0 if value else 1}" class="{"yes" if value else "no"}">' + (
        f"{yes}</td>" if value else f"{no}</td>"
    )


def _badges(codes: Iterable[str]) -> str:
    return "".join(
        f'<span class="badge {_e(PROBLEMS.get(code, ("warning",))[0])}" '
        f'title="{_e(PROBLEMS.get(code, ("", "unknown code"))[1])}">{_e(code)}</span>'
        for code in codes
    )


def _timeline(report: Report, months: int = 12) -> str:
    """An SVG bar chart: leaves expired, expiring per month for ``months``, and later."""
    now = report.generated
    starts = []
    year, month = now.year, now.month
    for _ in range(months + 1):
        starts.append(dt.datetime(year, month, 1, tzinfo=dt.UTC))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    buckets: list[tuple[str, list[str]]] = [("expired", [])]
    buckets += [(f"{s:%Y-%m}", []) for s in starts[:-1]]
    buckets.append(("later", []))
    for row in report.rows:
        if row.not_after is None:
            continue
        if row.not_after < now:
            index = 0
        elif row.not_after >= starts[-1]:
            index = len(buckets) - 1
        else:
            index = 1 + max(i for i, s in enumerate(starts[:-1]) if s <= row.not_after)
        buckets[index][1].append(row.target)
    width, height, bar = 760, 200, 760 // len(buckets)
    top = max((len(items) for _label, items in buckets), default=0) or 1
    parts = [
        f'<svg id="timeline" role="img" viewBox="0 -10 {width} {height + 50}" '
        f'width="100%" aria-label="leaf certificates expiring per month">'
    ]
    for index, (label, items) in enumerate(buckets):
        h = round(height * len(items) / top)
        x = index * bar + 4
        color = "#cf222e" if label == "expired" else "#bf8700" if index == 1 else "#0969da"
        tip = _e(
            f"{label}: {len(items)} — "
            + ", ".join(items[:20])
            + (" ..." if len(items) > 20 else "")
        )
        parts.append(
            f'<g class="bucket" data-count="{len(items)}"><title>{tip}</title>'
            f'<rect x="{x}" y="{height - h + 10}" width="{bar - 8}" height="{h}" fill="{color}"/>'
            f'<text x="{x + (bar - 8) / 2}" y="{height - h + 5}" text-anchor="middle">'
            f"{len(items) or ''}</text>"
            f'<text x="{x + (bar - 8) / 2}" y="{height + 28}" text-anchor="middle">{_e(label)}'
            "</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _bars(counts: Mapping[str, int], title: str) -> str:
    if not counts:
        return f"<h3>{_e(title)}</h3><p class='muted'>none</p>"
    top = max(counts.values()) or 1
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td data-sort='{n}'>{n}</td>"
        f"<td><span class='bar' style='width:{round(12 * n / top, 2)}rem'></span></td></tr>"
        for name, n in counts.items()
    )
    return (
        f"<h3>{_e(title)}</h3><table><thead><tr><th>{_e(title.split(' ')[0])}</th>"
        f"<th>targets</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_html(report: Report) -> str:
    """One self-contained page (see the module docstring)."""
    c = report.counts
    now = report.generated
    cards = [
        ("targets", c.get("targets", 0)),
        ("ok", c.get("ok", 0)),
        ("failed", c.get("failed", 0)),
        ("trusted", c.get("trusted", 0)),
        ("untrusted", c.get("untrusted", 0)),
        ("name mismatch", c.get("mismatched", 0)),
        (f"expiring ≤{report.warn_days}d", c.get("expiring", 0)),
        ("expired", c.get("expired", 0)),
    ]
    problem_rows = "".join(
        f"<tr><td>{_badges([code])}</td><td>{_e(PROBLEMS.get(code, ('', ''))[1])}</td>"
        f"<td data-sort='{n}'>{n}</td></tr>"
        for code, n in report.problems.items()
    )
    by_host = "".join(
        f"<tr><td>{_e(r.target)}</td><td>{_badges(r.problems)}</td></tr>"
        for r in report.rows
        if r.problems
    )
    host_rows = []
    for r in report.rows:
        days = _days(r.not_after, now) if r.not_after else None
        status = r.status if r.status == "ok" else f"{r.status} ({r.error_kind})"
        host_rows.append(
            "<tr>"
            f"<td>{_e(r.target)}</td>"
            f'<td class="{"yes" if r.status == "ok" else "no"}">{_e(status)}</td>'
            + _yes_no(r.trusted).replace("<td ", f'<td title="{_e(r.trust_reason or "")}" ', 1)
            + _yes_no(r.hostname_matches)
            + f"<td>{_e(r.leaf_cn or '-')}</td><td>{_e(r.issuer or '-')}</td>"
            f"<td class='nowrap'>{_e(r.key or '-')}</td>"
            f'<td class="nowrap" data-sort="{_e(r.not_after.isoformat() if r.not_after else "")}">'
            f"{_e(f'{r.not_after:%Y-%m-%d}' if r.not_after else '-')}</td>"
            f'<td data-sort="{"" if days is None else days}">{"-" if days is None else days}</td>'
            f"<td>{_e(r.deployments or '-')}</td>"
            f'<td data-sort="{len(r.problems)}">{_badges(r.problems)}</td>'
            "</tr>"
        )
    completed = "".join(
        f"<tr><td>{_e(r.target)}</td>{_yes_no(r.completed)}"
        f"<td>{_e(r.completion_reason or '-')}</td></tr>"
        for r in report.rows
        if r.completed is not None
    )
    completion = (
        "<h2>Missing intermediates fetched (AIA)</h2>\n<p class='muted'>The server does not send "
        "the whole chain: browsers complete it, apps and command-line clients do not.</p>\n"
        "<table><thead><tr><th>target</th><th>trusted once completed</th><th>what to do</th>"
        f"</tr></thead><tbody>{completed}</tbody></table>"
        if completed
        else ""
    )
    soon = "".join(
        f"<tr><td class='nowrap'>{e.not_after:%Y-%m-%d}</td>"
        f"<td class='nowrap'>{_e(_when(e.not_after, now))}</td>"
        f"<td>{_e(e.role)}</td><td>{_e(e.name)}</td><td>{_e(', '.join(e.targets[:5]))}"
        f"{_e(f' +{len(e.targets) - 5}') if len(e.targets) > 5 else ''}</td></tr>"
        for e in report.expiries[:15]
    )
    data = {"source": report.source, "hosts": [r.target for r in report.rows]}
    island = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
    )
    note = (
        ""
        if report.analysed
        else "<p class='no'>This scan has no trust or problem data (made before they existed).</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chainscan report: {_e(report.source)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>chainscan report</h1>
<p class="muted">{_e(report.source)} · generated {now:%Y-%m-%d %H:%M} UTC ·
{report.counts.get("targets", 0)} targets, <span id="host-count">{len(report.rows)}</span> in the
host table (invalid input lines are counted, not listed)</p>
{note}
<div class="cards">{"".join(f"<div class='card'><b>{n}</b>{_e(k)}</div>" for k, n in cards)}</div>
<h2>Expiry timeline (leaf certificates)</h2>
{_timeline(report)}
<h2>Soonest expiries</h2>
<table><thead><tr><th>expires</th><th>when</th><th>role</th><th>certificate</th><th>sent by</th>
</tr></thead><tbody>{soon or "<tr><td colspan=5 class=muted>none</td></tr>"}</tbody></table>
<h2>Problems</h2>
<div class="grid"><div>
<table><thead><tr><th>code</th><th>meaning</th><th>targets</th></tr></thead>
<tbody>{problem_rows or "<tr><td colspan=3 class=muted>none</td></tr>"}</tbody></table>
</div><div>
<table><thead><tr><th>target</th><th>problems</th></tr></thead>
<tbody>{by_host or "<tr><td colspan=2 class=muted>none</td></tr>"}</tbody></table>
</div></div>
{completion}
<h2>Issuers and keys (leaf certificates)</h2>
<div class="grid"><div>{_bars(report.issuers, "issuer")}</div>
<div>{_bars(report.key_types, "key type")}</div></div>
<h2>Hosts</h2>
<p class="muted">Click a column to sort.</p>
<div class="scroll"><table id="hosts" class="sortable"><thead><tr>
<th>target</th><th>status</th><th>trusted</th>
<th>name ok</th><th>leaf</th><th>issuer</th><th>key</th><th>expires</th><th>days left</th>
<th>deployments</th><th>problems</th></tr></thead>
<tbody>{"".join(host_rows)}</tbody></table></div>
<script type="application/json" id="report-data">{island}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
