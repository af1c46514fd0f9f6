"""The one place a backend name becomes a session: ``run``, ``capture`` and ``tui`` all build theirs here.

:data:`BACKENDS` names the emulators; :func:`make_session` refuses what only QEMU offers (an
accelerator, QEMU's gdbstub, a CPU model, extra QEMU arguments) when Bochs is asked for, so every
caller gives the same usage error for the same mistake. ``gdb_port`` under Bochs is the hypervisor's
resident gdb stub (issue 17); under QEMU ``gdb_stub`` chooses QEMU's (the default) or the resident one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.qemu import QemuSession
from hvtrace.launch.qemu_options import refuse_qemu_options
from hvtrace.launch.session import Session, SessionOptions

BACKENDS: dict[str, type[Session]] = {"qemu": QemuSession, "bochs": BochsSession}


def session_class(backend: str) -> type[Session]:
    """The session type of a backend name (raises LaunchError(USAGE) for a name hvtrace does not know)."""
    cls = BACKENDS.get(backend)
    if cls is None:
        raise LaunchError(ExitCode.USAGE, f"unknown backend {backend!r} (choose qemu or bochs)")
    return cls


def make_session(
    backend: str,
    *,
    accel: str = "tcg",
    gdb_port: int | None = None,
    gdb_stub: str | None = None,
    cpu_model: str | None = None,
    qemu_args: Sequence[str] = (),
    **options: Unpack[SessionOptions],
) -> Session:
    """A session of ``backend`` (not started). The QEMU-only keywords are refused for other backends."""
    cls = session_class(backend)
    if cls is QemuSession:
        return QemuSession(
            accel=accel,
            gdb_port=gdb_port,
            gdb_stub=gdb_stub or "qemu",
            cpu_model=cpu_model,
            qemu_args=qemu_args,
            **options,
        )
    if accel != "tcg":
        raise LaunchError(ExitCode.USAGE, "--accel applies to the qemu backend only")
    if gdb_stub not in (None, "hv"):
        raise LaunchError(
            ExitCode.USAGE, "--gdb-stub qemu needs the qemu backend (Bochs: the hypervisor's stub)"
        )
    refuse_qemu_options(backend, cpu_model, qemu_args)
    if gdb_port is not None:
        return BochsSession(gdb_port=gdb_port, **options)
    return cls(**options)
