"""The gdb face's disassembly: capstone on known bytes, the fallback, and the venv path gdb's Python gets."""

from __future__ import annotations

import ast
import importlib
import subprocess
from pathlib import Path

import pytest

from gdbext import disasm, hvtrace_gdb
from hvtrace import paths
from tests.components import require

GDBEXT = paths.repo_root() / "gdbext"


@pytest.fixture
def no_capstone(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(disasm, "_cache", {})
    monkeypatch.setattr(importlib, "import_module", refuse)


def test_capstone_decodes_cpuid_and_vmmcall() -> None:
    assert disasm.available()
    assert disasm.disassemble(b"\x0f\xa2", 0x1000) == ["0x1000: 0f a2                cpuid"]
    assert disasm.disassemble(bytes.fromhex("0f01d9"), 0x2000) == ["0x2000: 0f 01 d9             vmmcall"]


def test_capstone_decodes_count_instructions_in_intel_syntax() -> None:
    code = bytes.fromhex("0fa2 4889c3 ebfa 90")  # cpuid; mov rbx, rax; jmp back to the cpuid
    lines = disasm.disassemble(code, 0xFFFF_8000_0000_0000, 3)
    assert lines == [
        "0xffff800000000000: 0f a2                cpuid",
        "0xffff800000000002: 48 89 c3             mov rbx, rax",
        "0xffff800000000005: eb fa                jmp 0xffff800000000001",
    ]
    assert disasm.disassemble(code, 0x1000, 10) is not None
    assert len(disasm.disassemble(code, 0x1000, 10) or []) == 4  # stops at the end of the bytes


def test_undecodable_bytes_give_one_bad_line() -> None:
    assert disasm.disassemble(b"\x0f\x01", 0x1000) == ["0x1000: 0f 01                (bad)"]  # cut short
    assert disasm.disassemble(b"", 0x1000) == []


def test_without_capstone_the_caller_falls_back(no_capstone: None) -> None:
    assert not disasm.available()
    assert disasm.disassemble(b"\x0f\xa2", 0x1000) is None


def test_capstone_is_imported_lazily_and_only_by_disasm() -> None:
    for f in sorted(GDBEXT.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] == "capstone"], f"{f.name} imports capstone"


def test_venv_site_packages_matches_the_python_version(tmp_path: Path) -> None:
    site = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    assert hvtrace_gdb.venv_site_packages(tmp_path, (3, 11)) == site
    assert hvtrace_gdb.venv_site_packages(tmp_path, (3, 12)) is None
    assert hvtrace_gdb.venv_site_packages(tmp_path / "nothing", (3, 11)) is None


PROBE = """
import sys
from hvtrace.gdbext import disasm
site = [p for p in sys.path if p.endswith("site-packages") and "/.venv/" in p]
print("probe", disasm.available(), bool(site), disasm.disassemble(bytes.fromhex("0fa2"), 0x1000))
"""


def gdb_line(gdb: str, tag: str, *commands: str) -> str:
    """Run gdb in batch mode with ``commands``; the one output line starting with ``tag``."""
    argv = [gdb, "-nx", "-batch"]
    for c in commands:
        argv += ["-ex", c]
    r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith(f"{tag} ")), None)
    assert line is not None, r.stdout + r.stderr
    return line


def test_gdb_python_uses_the_venv_capstone(tmp_path: Path) -> None:
    """Sourcing the extension in gdb puts the venv on gdb's sys.path when the venv was built with gdb's
    Python major.minor, and capstone disassembles there; with another version the venv stays out and
    the fallback is used. Which case applies is decided outside the extension: gdb's Python version
    (asked from gdb) against the venv's site-packages directories."""
    gdb = require("gdb")
    version = gdb_line(gdb, "pyver", "python import sys; print('pyver', *sys.version_info[:2])")
    major, minor = version.split()[1:]
    venv_matches = (paths.repo_root() / ".venv" / "lib" / f"python{major}.{minor}" / "site-packages").is_dir()
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    line = gdb_line(gdb, "probe", f"source {GDBEXT / 'hvtrace_gdb.py'}", f"source {script}")
    if venv_matches:
        assert line == "probe True True ['0x1000: 0f a2                cpuid']", line
    else:
        assert line.startswith("probe False False None"), line  # no venv for gdb's Python: fallback
