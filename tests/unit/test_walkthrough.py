"""docs/walkthrough.md names files, functions and gdb commands: every one must exist, so the guided walk
through the seed's path cannot drift from the code it points at."""

from __future__ import annotations

import re
import subprocess

from hvtrace import paths

DOC = paths.repo_root() / "docs" / "walkthrough.md"
CODE_SPAN = re.compile(r"`([^`]+)`")
PATH = re.compile(r"^(hv|boot)/[\w./]+\.(c|h|S)$")
# A C identifier as the doc writes a function or type: lower case with an underscore, or `struct x`.
FUNCTION = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]+$")
STRUCT = re.compile(r"^struct ([a-z_][a-z0-9_]*)$")


def spans() -> list[str]:
    return CODE_SPAN.findall(DOC.read_text())


def sources() -> str:
    root = paths.repo_root()
    files = [*root.glob("hv/**/*.[chS]"), *root.glob("boot/**/*.[chS]")]
    return "\n".join(p.read_text() for p in files if "build" not in p.parts)


def test_every_named_file_exists() -> None:
    named = [s for s in spans() if PATH.match(s)]
    assert len(named) >= 20, named  # the walk names the files of every step
    missing = [s for s in named if not (paths.repo_root() / s).is_file()]
    assert not missing, missing


def test_every_named_function_and_struct_is_defined() -> None:
    text = sources()
    names = {s for s in spans() if FUNCTION.match(s)}
    assert {"hv_main", "memmap_init", "stage2_setup_identity", "vmx_enable", "vmx_exit_dispatch"} <= names
    undefined = [
        n for n in sorted(names) if not re.search(rf"\b{n}\s*\(|^{n}:|\.global[^\n]*\b{n}\b", text, re.M)
    ]
    assert not undefined, undefined
    structs = {m.group(1) for s in spans() if (m := STRUCT.match(s))}
    assert {"vmx_cpu", "svm_cpu"} <= structs
    assert not [s for s in structs if not re.search(rf"\bstruct {s}\s*\{{", text)]


def test_every_gdb_command_shown_exists() -> None:
    """Asked of real gdb with the extension loaded: `help hv-x` fails for a command that is not there."""
    commands = sorted({m.group(1) for s in spans() if (m := re.match(r"^(hv-[a-z]+)\b", s))})
    assert {"hv-break", "hv-vmcs", "hv-ept", "hv-exits"} <= set(commands)
    script = paths.repo_root() / "gdbext" / "hvtrace_gdb.py"
    for command in commands:
        argv = ["gdb", "-nx", "-batch", "-ex", f"source {script}", "-ex", f"help {command}"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, (command, r.stderr)
        assert "Undefined command" not in r.stderr, (command, r.stderr)
