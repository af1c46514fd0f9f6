"""Emulator launchers: context-managed sessions that run the hypervisor image and report its status.

Build a session with :func:`make_session` (the one backend switch, :mod:`hvtrace.launch.factory`).

The names below are imported from their modules when first used (PEP 562 ``__getattr__``): importing
one light module of this package (``hvtrace.launch.guest`` for the command line's option defaults)
then loads no session class, image builder or process helper; `hvtrace report` loads none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hvtrace.launch.bochs import BochsSession
    from hvtrace.launch.factory import BACKENDS, make_session, session_class
    from hvtrace.launch.guest import GuestSpec
    from hvtrace.launch.qemu import QemuSession
    from hvtrace.launch.session import RunResult, Session

#: Each exported name and the module that defines it.
_HOMES = {
    "BACKENDS": "factory",
    "BochsSession": "bochs",
    "GuestSpec": "guest",
    "QemuSession": "qemu",
    "RunResult": "session",
    "Session": "session",
    "make_session": "factory",
    "session_class": "factory",
}

__all__ = [
    "BACKENDS",
    "BochsSession",
    "GuestSpec",
    "QemuSession",
    "RunResult",
    "Session",
    "make_session",
    "session_class",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
