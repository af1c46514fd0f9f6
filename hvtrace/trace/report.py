"""`hvtrace report`: per reason and per CPU counts, shares, rates, inter-exit times, and drill-downs.

Everything is computed with numpy over the whole record array (no per-record Python). Times are TSC
ticks; they are converted to seconds only when the file header carries the TSC rate (``tsc_hz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hvtrace.decode.record_meaning import DRILLDOWNS, KIND_NAMES, drill_key, drill_text
from hvtrace.decode.vendor import reason_name
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile


def _gap_stats(tsc: np.ndarray[Any, np.dtype[np.uint64]]) -> dict[str, float] | None:
    if len(tsc) < 2:
        return None
    d = np.diff(np.sort(tsc).astype(np.int64))
    return {"min": float(d.min()), "avg": float(d.mean()), "max": float(d.max())}


def _group(
    recs: Records, keys: np.ndarray[Any, Any], total: int, span_s: float | None
) -> list[dict[str, Any]]:
    """Count, share, rate and inter-exit gaps (TSC ticks) for each distinct key, biggest first."""
    if not len(recs):
        return []
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    uniq, starts, counts = np.unique(sk, return_index=True, return_counts=True)
    tsc = recs["tsc"][order]
    rows = []
    for k, s, c in zip(uniq.tolist(), starts.tolist(), counts.tolist(), strict=True):
        row: dict[str, Any] = {"key": k, "count": c, "percent": 100.0 * c / total}
        row["rate_per_s"] = c / span_s if span_s else None
        row["gap_ticks"] = _gap_stats(tsc[s : s + c])
        rows.append(row)
    rows.sort(key=lambda r: -r["count"])
    return rows


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


def build_report(tf: TraceFile, recs: Records | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    recs = tf.records(ordered=False) if recs is None else recs
    meta = tf.meta
    vendor = int(meta.get("vendor") or 0)
    hz = meta.get("tsc_hz")
    total = len(recs)
    span_ticks = int(recs["tsc"].max() - recs["tsc"].min()) if total else 0
    span_s = span_ticks / hz if hz and span_ticks else None
    key = recs["kind"].astype(np.uint32) << 16 | recs["reason"].astype(np.uint32)
    by_reason = _group(recs, key, total, span_s)
    for r in by_reason:
        k = int(r.pop("key"))
        r["kind"] = KIND_NAMES.get(k >> 16, str(k >> 16))
        r["reason"] = k & 0xFFFF
        r["reason_name"] = reason_name(vendor, k & 0xFFFF)
    by_cpu = _group(recs, recs["cpu"], total, span_s)
    for r in by_cpu:
        r["cpu"] = int(r.pop("key"))
    drill: dict[str, list[dict[str, Any]]] = {}
    for kind, (title, fld, shift) in DRILLDOWNS.items():
        sel = recs[recs["kind"] == kind]
        if len(sel):
            rows = _group(sel, drill_key(int(kind), sel[fld] >> np.uint64(shift)), len(sel), span_s)
            for r in rows:
                v = int(r.pop("key"))
                r["value"] = v << shift
            drill[title] = rows
    return {
        "file": str(tf.path),
        "meta": meta,
        "records": total,
        "lost": _lost(tf),
        "lost_total": tf.lost_total(),
        "damage": _damage(tf),
        "recovered_index": tf.recovered,
        "span_ticks": span_ticks,
        "tsc_hz": hz,
        "span_s": span_s,
        "by_reason": by_reason,
        "by_cpu": by_cpu,
        "drilldown": drill,
    }


@dataclass
class _Fmt:
    hz: float | None

    def t(self, ticks: float) -> str:
        if self.hz:
            s = ticks / self.hz
            return f"{s * 1e6:.2f}us" if s < 1e-1 else f"{s:.3f}s"
        return f"{ticks:.0f}"

    def gaps(self, g: dict[str, float] | None) -> str:
        if g is None:
            return "-"
        return f"{self.t(g['min'])} / {self.t(g['avg'])} / {self.t(g['max'])}"


def format_text(rep: dict[str, Any]) -> str:
    """The report as text tables."""
    f = _Fmt(rep["tsc_hz"])
    meta = rep["meta"]
    unit = "time" if rep["tsc_hz"] else "TSC ticks (TSC rate unknown: times are not converted)"
    lines = [
        f"trace {rep['file']}: {rep['records']} records, vendor {meta.get('vendor_name')}, "
        f"CPUs {meta.get('cpus')}, build {str(meta.get('build_id'))[:12]}",
        f"span {f.t(rep['span_ticks'])}"
        + (f" ({rep['span_s']:.3f} s)" if rep["span_s"] else "")
        + f"; inter-exit min / avg / max in {unit}",
    ]
    lost = rep["lost_total"]
    if lost:
        dmg = rep["damage"]["skipped_records"]
        per_cpu = ", ".join(f"CPU {c}: {n}" for c, n in rep["lost"].items())
        lines.append(f"lost records: {lost} ({per_cpu}" + (f"; {dmg} in damaged chunks)" if dmg else ")"))
    if rep["recovered_index"] and rep["damage"]["index"] is None:
        lines.append("note: the file has no index (capture killed?): index rebuilt by scanning")
    rate = "rate/s" if rep["tsc_hz"] else ""
    lines += ["", f"{'reason':<22} {'kind':<14} {'count':>10} {'%':>7} {rate:>10}  inter-exit"]
    for r in rep["by_reason"]:
        rs = f"{r['rate_per_s']:,.0f}" if r["rate_per_s"] else ""
        head = f"{r['reason_name']:<22} {r['kind']:<14} {r['count']:>10} {r['percent']:>6.2f}% {rs:>10}"
        lines.append(f"{head}  {f.gaps(r['gap_ticks'])}")
    lines += ["", f"{'cpu':<5} {'count':>10} {'%':>7} {rate:>10}  inter-exit"]
    for r in rep["by_cpu"]:
        rs = f"{r['rate_per_s']:,.0f}" if r["rate_per_s"] else ""
        lines.append(
            f"{r['cpu']:<5} {r['count']:>10} {r['percent']:>6.2f}% {rs:>10}  {f.gaps(r['gap_ticks'])}"
        )
    kinds = {title: kind for kind, (title, _f, _s) in DRILLDOWNS.items()}
    for title, rows in rep["drilldown"].items():
        lines += ["", f"{title:<22} {'count':>10} {'%':>7}"]
        for r in rows[:20]:
            lines.append(f"{drill_text(kinds[title], r['value']):<22} {r['count']:>10} {r['percent']:>6.2f}%")
        if len(rows) > 20:
            lines.append(f"... {len(rows) - 20} more")
    return "\n".join(lines)
