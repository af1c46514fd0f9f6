"""`hvtrace run --backend bochs` end to end (Intel VT-x platform: Bochs 2.7 from a GRUB ISO)."""

from __future__ import annotations

import re

import pytest

from hvtrace import paths
from hvtrace.abi import HvStatus
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow, pytest.mark.bochs]


def test_boots_two_cpus_and_passes(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--cpus", "2")
    assert run.returncode == 0, run.describe()
    out = run.stdout
    assert re.search(r"^memory map \(\d+ ranges\):$", out, re.MULTILINE), run.describe()
    assert re.search(r"^total RAM: \d+ MiB usable", out, re.MULTILINE), run.describe()
    assert re.search(r"^2 CPUs online$", out, re.MULTILINE), run.describe()
    assert "HVTRACE STATUS code=0 result=pass reason=ok" in out
    # Only hypervisor output is shown: none of the Bochs debugger's chatter.
    assert "Next at t=" not in out
    assert "Bochs x86 Emulator" not in out
    assert run.kept_dir is None
    assert run.bochs_dir is not None
    assert_clean(run)
    # The GRUB ISO was cached by content.
    assert any(paths.iso_cache_dir().glob("*.iso"))


def test_injected_ud_on_cpu1_reports_the_exception(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--cpus", "2", "--inject-fault", "ud", "--fault-cpu", "1")
    assert run.returncode == HvStatus.EXCEPTION, run.describe()
    assert run.returncode == 2
    assert re.search(r"FATAL: CPU 1 \(APIC \d+\) exception vector 6 #UD .* RIP=0x[0-9a-f]+", run.stdout), (
        run.describe()
    )
    assert "HVTRACE STATUS code=2 result=fail reason=exception" in run.stdout
    # On failure the Bochs temp dir (bochs.log) is kept and named.
    assert run.kept_dir is not None
    assert (run.kept_dir / "bochs.log").is_file()
    assert "bochs.log kept:" in run.stderr
    assert_clean(run)


def test_timeout_stops_bochs(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--append", "hang=1", "--timeout", "8")
    assert run.returncode == 124, run.describe()
    assert "timeout" in run.stderr
    assert "no final status" in run.stderr
    assert_clean(run)


def test_bochs_refusing_the_cpu_count_is_70(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--cpus", "300")
    assert run.returncode == 70, run.describe()
    assert "n_processors" in run.stderr  # Bochs' own reason
    assert_clean(run)
