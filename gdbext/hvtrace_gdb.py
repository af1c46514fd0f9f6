"""Load the hvtrace gdb commands: ``source /path/to/gdbext/hvtrace_gdb.py`` in gdb.

gdb's embedded Python is the system Python (no venv), so this puts the repository root on sys.path
(for hvtrace.abi / hvtrace.decode, all stdlib) and loads this directory as the package
``hvtrace.gdbext`` before registering the commands. When the repository has a virtualenv built with the
same Python major.minor as gdb's (.venv/lib/python3.X/site-packages), that directory is appended to
sys.path too, so the disassembly can use the venv's capstone (imported lazily, by gdbext/disasm.py
only; without it gdb's own disassembler is used). Running this file outside gdb does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def venv_site_packages(root: Path = ROOT, version: tuple[int, int] | None = None) -> Path | None:
    """The repository venv's site-packages for this Python's major.minor, or None."""
    major, minor = version or sys.version_info[:2]
    site = root / ".venv" / "lib" / f"python{major}.{minor}" / "site-packages"
    return site if site.is_dir() else None


def load() -> None:
    if (ROOT / "hvtrace").is_dir():  # a checkout: gdbext/ beside hvtrace/
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
    elif str(ROOT.parent) not in sys.path:
        # Installed from a wheel: this file is <site-packages>/hvtrace/gdbext/, so the package's parent is
        # that site-packages; after gdb's own paths, which it must not shadow.
        sys.path.append(str(ROOT.parent))
    site = venv_site_packages()
    if site is not None and str(site) not in sys.path:
        sys.path.append(str(site))  # after the system paths: only fills in what gdb's Python lacks
    import hvtrace  # noqa: PLC0415

    if "hvtrace.gdbext" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "hvtrace.gdbext", HERE / "__init__.py", submodule_search_locations=[str(HERE)]
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["hvtrace.gdbext"] = module
        spec.loader.exec_module(module)
        hvtrace.gdbext = module  # type: ignore[attr-defined]
    importlib.import_module("hvtrace.gdbext.commands").register()


if "gdb" in sys.modules:
    load()
