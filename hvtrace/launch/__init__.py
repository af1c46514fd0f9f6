"""Emulator launchers: context-managed sessions that run the hypervisor image and report its status.

Build a session with :func:`make_session` (the one backend switch, :mod:`hvtrace.launch.factory`).
"""

from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.factory import BACKENDS, make_session, session_class
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.qemu import QemuSession
from hvtrace.launch.session import RunResult, Session

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
