"""Emulator launchers: context-managed sessions that run the hypervisor image and report its status."""

from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.qemu import QemuSession
from hvtrace.launch.session import RunResult, Session

BACKENDS: dict[str, type[Session]] = {"qemu": QemuSession, "bochs": BochsSession}

__all__ = ["BACKENDS", "BochsSession", "GuestSpec", "QemuSession", "RunResult", "Session"]
