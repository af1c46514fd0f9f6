"""hvtrace.decode must load in gdb's embedded Python: Debian's system Python 3.11, no venv, stdlib only.

Checked three ways: every import in the package (and hvtrace/__init__.py and hvtrace/abi.py, which it
pulls in) is a stdlib module, hvtrace.abi or hvtrace.decode itself; /usr/bin/python3 -I (isolated: no
venv, no user site, no PYTHONPATH) imports and runs every module; and gdb's own Python does the same
when gdb is installed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvtrace import paths

MODULES = [
    "vmcs_fields",
    "vmx_controls",
    "vmx_exits",
    "vmx_qualifications",
    "vmcs_view",
    "svm_vmcb",
    "svm_controls",
    "svm_exits",
    "vmcb_view",
    "stage2",
    "guest_paging",
    "vendor",
    "record_meaning",
]
SYSTEM_PYTHON = Path("/usr/bin/python3")

# Imports each module and exercises it once, printing a line the tests look for.
PROBE = """
import sys
sys.path.insert(0, {root!r})
before = set(sys.modules)
import hvtrace.decode.{mods}
from hvtrace.decode import vmcs_view, svm_exits, stage2, record_meaning
lines = vmcs_view.vmcs_view([(0x681E, 0x1000), (0x4402, 10)])
assert any("GUEST_RIP" in ln for ln in lines), lines
assert svm_exits.exit_code_name(0x72) == "CPUID"
assert record_meaning.detail(1, 1, 10, qual=0, arg0=1, arg1=0, gpa=0) == "leaf 0x1 subleaf 0x0"
assert stage2.decode_ept(0x2000B7, 2).page_size == 2 << 20
loaded = set(sys.modules) - before
assert not [m for m in loaded if m.split(".")[0] not in (*sys.stdlib_module_names, "hvtrace")], loaded
print("hvtrace.decode ok", sys.version_info[:2])
"""


def probe() -> str:
    root = str(paths.repo_root())
    return PROBE.format(root=root, mods=", hvtrace.decode.".join(MODULES))


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_every_import_is_stdlib_or_the_package_itself() -> None:
    pkg = paths.repo_root() / "hvtrace"
    files = [pkg / "__init__.py", pkg / "abi.py", *sorted((pkg / "decode").glob("*.py"))]
    assert len(files) == len(MODULES) + 3
    for f in files:
        for name in _imports(f):
            top = name.split(".")[0]
            ok = (
                top in sys.stdlib_module_names
                or name.startswith("hvtrace.decode")
                or name in ("hvtrace", "hvtrace.abi")
            )
            assert ok, f"{f.name} imports {name}: hvtrace.decode must stay stdlib-only (gdb's Python)"


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system Python at /usr/bin/python3")
def test_system_python_imports_the_decoders() -> None:
    r = subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-B", "-c", probe()],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hvtrace.decode ok" in r.stdout


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")
def test_gdb_python_imports_the_decoders(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text("import sys\nsys.dont_write_bytecode = True\n" + probe())
    r = subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", f"source {script}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "hvtrace.decode ok" in r.stdout, r.stdout + r.stderr
