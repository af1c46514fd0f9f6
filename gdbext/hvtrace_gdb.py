"""Load the hvtrace gdb commands: ``source /path/to/gdbext/hvtrace_gdb.py`` in gdb.

gdb's embedded Python is the system Python (no venv), so this puts the repository root on sys.path
(for hvtrace.abi / hvtrace.decode, all stdlib) and loads this directory as the package
``hvtrace.gdbext`` before registering the commands. Running it outside gdb does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
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
