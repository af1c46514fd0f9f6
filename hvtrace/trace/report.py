"""`hvtrace report`: per reason and per CPU counts, shares, rates and handling times, and drill-downs.

The file is streamed (hvtrace.trace.report_scan): chunk by chunk, only the columns needed, into an
aggregate whose size does not depend on the number of records (hvtrace.trace.report_agg), so memory
stays bounded whatever the file's size. Handling time is ``tsc_resume - tsc`` of each record (ABI v2);
p99 comes from a log-scale histogram (hvtrace.trace.report_hist: within 1.6 %). Times are in seconds
when the TSC rate (``tsc_hz``) is known, else in TSC ticks (the report says so).

The report is a list of sections (``SECTIONS``), each building its part of the JSON from the aggregate
and wording it as text; a new section (e.g. guest symbols) is one more entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvtrace.decode.record_meaning import DRILLDOWNS, KIND_NAMES, drill_text
from hvtrace.decode.vendor import reason_name
from hvtrace.trace.report_agg import Aggregate, GroupStats
from hvtrace.trace.report_scan import scan
from hvtrace.trace.report_select import Selection
from hvtrace.trace.tracefile import TraceFile

DRILL_ROWS = 20  # drill-down values shown as text unless --top says otherwise


@dataclass
class ReportContext:
    """What every section builds from: the file, the aggregate of the selected records, the options."""

    tf: TraceFile
    agg: Aggregate
    vendor: int
    hz: float | None
    timed: bool  # the file's records carry handling times (ABI v2)
    top: int | None = None
    sort: str = "count"  # or "time"

    @property
    def span_s(self) -> float | None:
        return self.agg.span_ticks / self.hz if self.hz and self.agg.span_ticks else None


def _row(ctx: ReportContext, st: GroupStats) -> dict[str, Any]:
    total, ticks = ctx.agg.records, ctx.agg.total_ticks
    span = ctx.span_s
    return {
        "count": st.count,
        "percent": 100.0 * st.count / total if total else 0.0,
        "rate_per_s": st.count / span if span else None,
        "timed": st.timed,
        "handling_ticks": st.ticks,
        "time_percent": 100.0 * st.ticks / ticks if ticks else None,
        "handling": st.handling(ctx.hz),
    }


def _ordered(ctx: ReportContext, groups: dict[int, GroupStats]) -> list[tuple[int, GroupStats]]:
    def by(item: tuple[int, GroupStats]) -> tuple[float, int]:
        return (-(item[1].ticks if ctx.sort == "time" else item[1].count), item[0])

    rows = sorted(groups.items(), key=by)
    return rows if ctx.top is None else rows[: ctx.top]


def reasons_section(ctx: ReportContext) -> list[dict[str, Any]]:
    rows = []
    for key, st in _ordered(ctx, ctx.agg.by_reason):
        kind, reason = key >> 16, key & 0xFFFF
        head = {"kind": KIND_NAMES.get(kind, str(kind)), "reason": reason}
        rows.append(head | {"reason_name": reason_name(ctx.vendor, reason)} | _row(ctx, st))
    return rows


def cpus_section(ctx: ReportContext) -> list[dict[str, Any]]:
    return [{"cpu": cpu} | _row(ctx, st) for cpu, st in _ordered(ctx, ctx.agg.by_cpu)]


def drilldown_section(ctx: ReportContext) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, (title, _fld, shift) in DRILLDOWNS.items():
        counts = ctx.agg.drill.get(kind)
        if not counts:
            continue
        total = sum(counts.values())
        rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        rows = rows if ctx.top is None else rows[: ctx.top]
        out[title] = [{"value": v << shift, "count": c, "percent": 100.0 * c / total} for v, c in rows]
    return out


@dataclass(frozen=True)
class Section:
    key: str  # its key in the JSON report
    build: Callable[[ReportContext], Any]
    text: Callable[[Any, Fmt], list[str]]


def build_report(
    tf: TraceFile,
    selection: Selection | None = None,
    *,
    top: int | None = None,
    sort: str = "count",
    jobs: int | None = None,
    summaries: bool = True,
) -> dict[str, Any]:
    """The report of the selected records (default: all) as a JSON-ready dict; ``summaries=False``
    decodes every chunk instead of merging the summaries of those selected whole (the same result)."""
    sel = selection or Selection.of(tf)
    agg = scan(tf, sel.chunks(tf), sel, jobs, summaries)
    meta = tf.meta
    hz = meta.get("tsc_hz")
    timed = tf.abi >= 2
    ctx = ReportContext(tf, agg, int(meta.get("vendor") or 0), hz, timed, top, sort)
    rep: dict[str, Any] = {
        "file": str(tf.path),
        "meta": meta,
        "records": agg.records,
        "lost": _lost(tf),
        "lost_total": tf.lost_total(),
        "damage": _damage(tf),
        "recovered_index": tf.recovered,
        "span_ticks": agg.span_ticks,
        "tsc_hz": hz,
        "span_s": ctx.span_s,
        "handling_known": timed,
        "time_unit": ("s" if hz else "ticks") if timed else None,
        "handling_ticks": agg.total_ticks,
        "filters": {"cpus": sorted(sel.cpus) if sel.cpus else None, "reasons": sel.reasons,
                    "since": sel.since, "until": sel.until, "top": top, "sort": sort},
    }  # fmt: skip
    for section in SECTIONS:
        rep[section.key] = section.build(ctx)
    return rep


def _lost(tf: TraceFile) -> dict[str, int]:
    """Records lost per CPU: ring / stream losses plus records in chunks skipped as damaged."""
    out: dict[int, int] = dict(tf.lost())
    for cpu, n in tf.skipped().items():
        out[cpu] = out.get(cpu, 0) + n
    return {str(k): v for k, v in sorted(out.items())}


def _damage(tf: TraceFile) -> dict[str, Any]:
    d = tf.damage
    return {
        "skipped_chunks": d.chunks,
        "skipped_records": d.records,
        "skipped_unknown_size": d.unknown,
        "index": d.index,
        "problems": list(d.problems),
        "truncated_at": tf.truncated_at,
    }


@dataclass
class Fmt:
    """How times are worded: seconds (auto unit) when the TSC rate is known, else ticks."""

    hz: float | None
    known: bool

    def t(self, value: float | None) -> str:
        """A handling time already in seconds (rate known) or ticks."""
        if value is None:
            return "-"
        if self.hz:
            if value < 1e-3:
                return f"{value * 1e6:.2f}us"
            return f"{value * 1e3:.2f}ms" if value < 1 else f"{value:.3f}s"
        return f"{value:.0f}"

    def stats_head(self) -> str:
        return f"{'time%':>7} {'min':>10} {'avg':>10} {'max':>10} {'p99':>10}"

    def stats(self, row: dict[str, Any]) -> str:
        h = row["handling"] or {}
        tp = row["time_percent"]
        tps = f"{tp:6.2f}%" if tp is not None else "-"
        return f"{tps:>7} " + " ".join(f"{self.t(h.get(k)):>10}" for k in ("min", "avg", "max", "p99"))


def _rate(row: dict[str, Any]) -> str:
    return f"{row['rate_per_s']:,.0f}" if row["rate_per_s"] else ""


def reasons_text(rows: list[dict[str, Any]], f: Fmt) -> list[str]:
    lines = ["", f"{'reason':<22} {'kind':<14} {'count':>10} {'%':>7} {'rate/s':>10}  {f.stats_head()}"]
    for r in rows:
        head = f"{r['reason_name']:<22} {r['kind']:<14} {r['count']:>10} {r['percent']:>6.2f}% {_rate(r):>10}"
        lines.append(f"{head}  {f.stats(r)}")
    return lines


def cpus_text(rows: list[dict[str, Any]], f: Fmt) -> list[str]:
    lines = ["", f"{'cpu':<5} {'count':>10} {'%':>7} {'rate/s':>10}  {f.stats_head()}"]
    for r in rows:
        lines.append(f"{r['cpu']:<5} {r['count']:>10} {r['percent']:>6.2f}% {_rate(r):>10}  {f.stats(r)}")
    return lines


def drilldown_text(drill: dict[str, list[dict[str, Any]]], f: Fmt) -> list[str]:
    kinds = {title: kind for kind, (title, _f, _s) in DRILLDOWNS.items()}
    lines: list[str] = []
    for title, rows in drill.items():
        lines += ["", f"{title:<22} {'count':>10} {'%':>7}"]
        for r in rows[:DRILL_ROWS]:
            lines.append(f"{drill_text(kinds[title], r['value']):<22} {r['count']:>10} {r['percent']:>6.2f}%")
        if len(rows) > DRILL_ROWS:
            lines.append(f"... {len(rows) - DRILL_ROWS} more")
    return lines


SECTIONS: list[Section] = [
    Section("by_reason", reasons_section, reasons_text),
    Section("by_cpu", cpus_section, cpus_text),
    Section("drilldown", drilldown_section, drilldown_text),
]


def _header(rep: dict[str, Any], f: Fmt) -> list[str]:
    meta = rep["meta"]
    if not rep["handling_known"]:
        unit = "handling time unknown (ABI v1 file: not recorded), columns '-'"
    elif rep["tsc_hz"]:
        unit = f"handling time (exit to resume) in seconds, TSC {rep['tsc_hz'] / 1e6:,.1f} MHz"
    else:
        unit = "handling time (exit to resume) in TSC ticks (TSC rate unknown: not converted)"
    span = rep["span_s"]
    lines = [
        f"trace {rep['file']}: {rep['records']} records, vendor {meta.get('vendor_name')}, "
        f"CPUs {meta.get('cpus')}, build {str(meta.get('build_id'))[:12]}",
        f"span {span:.3f} s" if span else f"span {rep['span_ticks']} TSC ticks",
        unit + ("; p99 from a log-scale histogram (within 1.6 %)" if rep["handling_known"] else ""),
    ]
    filt = rep["filters"]
    words = [f"{k} {filt[k]}" for k in ("cpus", "reasons", "since", "until", "top") if filt[k] is not None]
    if words:
        lines.append("filters: " + ", ".join(words) + " (since/until: tsc, cpu, seq of the bound)")
    lost = rep["lost_total"]
    if lost:
        dmg = rep["damage"]["skipped_records"]
        per_cpu = ", ".join(f"CPU {c}: {n}" for c, n in rep["lost"].items())
        lines.append(f"lost records: {lost} ({per_cpu}" + (f"; {dmg} in damaged chunks)" if dmg else ")"))
    if rep["recovered_index"] and rep["damage"]["index"] is None:
        lines.append("note: the file has no index (capture killed?): index rebuilt by scanning")
    return lines


def format_text(rep: dict[str, Any]) -> str:
    """The report as text tables."""
    f = Fmt(rep["tsc_hz"], rep["handling_known"])
    lines = _header(rep, f)
    for section in SECTIONS:
        lines += section.text(rep[section.key], f)
    return "\n".join(lines)
