"""Post mortem on Bochs (VT-x): the RAM dump, wrapped as an ELF core, in real gdb via `hvtrace gdb`.

The self-test's SNAPSHOT hypercall leaves each CPU's VMCS snapshot (why=REQUEST, exit VMCALL 18) in
RAM; the dump carries it and the EPT, which hv-vmcs and hv-ept decode from the core file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hvtrace.elfcore import write_core
from hvtrace.gdbmi import Gdb
from hvtrace.launch.bochs import BochsSession
from tests.integration.conftest import hvtrace_argv

pytestmark = [pytest.mark.slow, pytest.mark.bochs]


def test_bochs_dump_as_core_shows_vmcs_and_ept(tmp_path: Path) -> None:
    with BochsSession(cpus=1, memory_mb=32, dump_memory=True) as s:
        result = s.wait()
        assert result.exit_code == 0, result.message
        assert s.dump_path is not None
        # `hvtrace gdb --dump PREFIX` wraps the raw files itself.
        r = subprocess.run(
            hvtrace_argv(
                "gdb", "--dump", str(s.dump_path), "--batch",
                "--ex", "hv-vmcs 0 --exit", "--ex", "hv-ept 0x100000", "--ex", "hv-cpus", "--ex", "hv-vmcs 0",
            ),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        core = write_core(s.dump_files(), tmp_path / "bochs.core")
    assert r.returncode == 0, r.stderr
    assert "CPU 0 VMCS snapshot: why=REQUEST" in r.stdout
    assert "VM_EXIT_REASON" in r.stdout
    assert "18 VMCALL" in r.stdout
    assert "EPT walk of GPA 0x100000" in r.stdout
    assert "GPA 0x100000 -> HPA 0x100000  rwx WB" in r.stdout
    assert "CPU 0 VMX launched ring" in r.stdout
    # Fields the controls consult, written by the hypervisor (the region is poisoned with 0xff before
    # VMCLEAR, so a forgotten one would not read 0): issue 13 item 10.
    for name in (
        "VM_EXIT_MSR_STORE_COUNT", "VM_EXIT_MSR_LOAD_COUNT", "VM_ENTRY_MSR_LOAD_COUNT", "TSC_OFFSET",
        "CR3_TARGET_COUNT",
    ):  # fmt: skip
        assert re.search(rf"^\s+{name}\s+\d+\s+0x0+$", r.stdout, re.MULTILINE), f"{name}\n{r.stdout}"
    # The same core through pygdbmi, with `core-file`: hv-guest and hv-exits read it too.
    with Gdb() as gdb:
        gdb.load()
        gdb.cmd(f"core-file {core}")
        assert "RIP 0x" in gdb.ok("hv-guest 0")
        assert "VMCALL(0x12)/VMCALL" in gdb.ok("hv-exits -n 2")
        assert gdb.cmd("hv-vmcs 1").error == "hv-vmcs: no CPU 1 (this target has 1 CPUs: 0-0)"
