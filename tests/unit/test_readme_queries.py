"""The README's three example queries (section "SQL over traces") run, as written there, on a real
capture and give what they promise."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hvtrace import paths
from hvtrace.cli import main
from hvtrace.trace.tracefile import TraceFile
from tests.unit.test_query import REAL_V2

README = paths.repo_root() / "README.md"
QUERY = re.compile(r'^hvtrace query "(.*?)" storm\.hvt$', re.MULTILINE | re.DOTALL)


def readme_queries() -> list[str]:
    text = README.read_text()
    section = text[text.index("### SQL over traces") :]
    section = section[: section.index("\n## ")]
    return QUERY.findall(section)


def run(capsys: pytest.CaptureFixture[str], sql: str, trace: Path) -> list[dict[str, object]]:
    code = main(["query", sql, str(trace), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0, sql
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def check_readme_queries(capsys: pytest.CaptureFixture[str], trace: Path) -> None:
    top_rips, histogram, per_second = readme_queries()
    recs = TraceFile.open(trace).records()

    rows = run(capsys, top_rips, trace)
    per_reason = Counter(str(r["reason_name"]) for r in rows)
    assert per_reason
    assert max(per_reason.values()) <= 3
    pairs = Counter(zip(recs["reason"].tolist(), recs["rip"].tolist(), strict=True))
    (_reason, rip), n = pairs.most_common(1)[0]
    assert any(r["at_rip"] == hex(rip) and r["exits"] == n for r in rows)  # the busiest RIP is listed

    rows = run(capsys, histogram, trace)
    known = int(((recs["tsc_resume"] != 0) & (recs["tsc_resume"] >= recs["tsc"])).sum())
    assert sum(int(str(r["exits"])) for r in rows) == known
    assert all(np.log2(float(str(r["from_us"]))).is_integer() for r in rows)

    rows = run(capsys, per_second, trace)
    by_cpu: Counter[int] = Counter()
    for r in rows:
        by_cpu[int(str(r["cpu"]))] += int(str(r["exits"]))
    assert by_cpu == Counter(recs["cpu"].tolist())


def test_the_readme_has_three_example_queries() -> None:
    assert len(readme_queries()) == 3


def test_readme_queries_run_on_a_real_capture(capsys: pytest.CaptureFixture[str]) -> None:
    check_readme_queries(capsys, REAL_V2)
