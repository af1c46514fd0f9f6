"""A guest kernel for the hypervisor to boot: the kernel file, an optional initrd, its command line.

The hypervisor takes the guest as multiboot modules (hv/core/guest_load.c): module 0 is the kernel,
and its module string ``"FILE ARGS"`` carries the guest's command line (everything after the first
space); module 1 is the initrd (a Linux kernel's initrd, a multiboot kernel's first module). The two
boot paths spell that differently:

- QEMU (multiboot ``-kernel``): ``-initrd "KERNEL ARGS,INITRD initrd"``: comma-separated modules,
  each ``"file args"``; a literal comma inside the args is written ``",,"``.
- GRUB (the Bochs ISO, boot/mkiso.sh): the files are copied to ``/boot/guest`` and ``/boot/initrd``
  and ``grub.cfg`` gets ``module --nounzip /boot/guest /boot/guest ARGS`` and ``module --nounzip
  /boot/initrd /boot/initrd initrd`` after its ``multiboot`` line. GRUB 2 builds a module's string
  from the words after the file name only (measured, GRUB 2.06), so the path is repeated to give the
  same ``"FILE ARGS"`` string as QEMU; ``--nounzip``: GRUB would otherwise gunzip a compressed
  initrd, and the guest must get the same bytes under both emulators.

A :class:`GuestSpec` is checked when it is made: a missing or unreadable file is
``ExitCode.NO_INPUT``; a path QEMU's option syntax cannot carry (a space or a comma) or a command line
the hypervisor cannot take is ``ExitCode.USAGE``. What GRUB's config cannot carry verbatim (quotes,
``$``, ``;``, repeated spaces, ...) is refused only for Bochs (:meth:`GuestSpec.check_grub`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypedDict, cast

from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch.memory import GUEST_MIN_MEMORY_MB
from hvtrace.launch.qemu_options import cpu_option, refuse_qemu_options, split_qemu_args

#: Longest guest command line the hypervisor passes on (hv/include/hv/guest.h: GUEST_CMDLINE_MAX
#: bytes including the terminating NUL); a longer one would be cut silently.
GUEST_CMDLINE_MAX = 2048 - 1
#: Where boot/mkiso.sh puts the guest's files in the ISO, and the initrd module's string.
ISO_GUEST_PATH = "/boot/guest"
ISO_INITRD_PATH = "/boot/initrd"
INITRD_ARGS = "initrd"

#: Characters a GRUB config line carries verbatim (no quoting, expansion or escaping by GRUB's
#: script parser or its loader command-line builder); boot/mkiso.sh checks the same set.
GRUB_SAFE_RE = re.compile(r"[A-Za-z0-9_=,.:/+@%~ -]*")
_PATH_UNSAFE_RE = re.compile(r"[\s,]")


def _check_file(path: Path, what: str) -> Path:
    """The absolute path of a readable regular file (symlinks kept: their names are what QEMU sees)."""
    p = Path(os.path.abspath(path))
    if not p.exists():
        raise LaunchError(ExitCode.NO_INPUT, f"{what} {p} does not exist")
    if not p.is_file():
        raise LaunchError(ExitCode.NO_INPUT, f"{what} {p} is not a regular file")
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise LaunchError(ExitCode.NO_INPUT, f"{what} {p} cannot be read: {e.strerror or e}") from None
    if _PATH_UNSAFE_RE.search(str(p)):
        raise LaunchError(
            ExitCode.USAGE,
            f"{what} path {str(p)!r} contains whitespace or a comma, which the multiboot module string "
            "and QEMU's -initrd cannot carry (copy or link the file to a plain path)",
        )
    return p


def _check_cmdline(cmdline: str) -> None:
    bad = next((c for c in cmdline if not " " <= c <= "~"), None)
    if bad is not None:
        raise LaunchError(
            ExitCode.USAGE,
            f"guest command line {cmdline!r}: character {bad!r} is not printable ASCII "
            "(the hypervisor passes plain ASCII text)",
        )
    if len(cmdline) > GUEST_CMDLINE_MAX:
        raise LaunchError(
            ExitCode.USAGE,
            f"guest command line is {len(cmdline)} characters long; the hypervisor passes at most "
            f"{GUEST_CMDLINE_MAX}",
        )


def _hash_file(h: hashlib._Hash, path: Path) -> None:
    h.update(f"{path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)


@dataclass(frozen=True)
class GuestSpec:
    """The guest kernel (multiboot or bzImage), its optional initrd and its command line.

    Construction checks the files and the command line (raises LaunchError); ``kernel`` and ``initrd``
    become absolute paths.
    """

    kernel: Path
    initrd: Path | None = None
    cmdline: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _check_file(self.kernel, "guest kernel"))
        if self.initrd is not None:
            object.__setattr__(self, "initrd", _check_file(self.initrd, "initrd"))
        _check_cmdline(self.cmdline)

    @property
    def name(self) -> str:
        """Short label for status bars and trace metadata: the kernel's file name."""
        return self.kernel.name

    def verify(self) -> None:
        """Check again that the files are still there and readable (a session calls it at start)."""
        _check_file(self.kernel, "guest kernel")
        if self.initrd is not None:
            _check_file(self.initrd, "initrd")

    # ------------------------------------------------------------------ QEMU
    def module_strings(self) -> list[str]:
        """The multiboot module strings, in order: ``"KERNEL ARGS"`` (``"KERNEL"`` without args), then
        ``"INITRD initrd"``."""
        mods = [f"{self.kernel} {self.cmdline}" if self.cmdline else str(self.kernel)]
        if self.initrd is not None:
            mods.append(f"{self.initrd} {INITRD_ARGS}")
        return mods

    def qemu_initrd(self) -> str:
        """The value of QEMU's ``-initrd`` (multiboot modules; commas in the args doubled)."""
        return ",".join(m.replace(",", ",,") for m in self.module_strings())

    # ------------------------------------------------------------------ GRUB ISO (Bochs)
    def grub_problem(self) -> str | None:
        """Why GRUB's config cannot carry the command line verbatim, or None."""
        c = self.cmdline
        if not GRUB_SAFE_RE.fullmatch(c):
            bad = sorted({ch for ch in c if not GRUB_SAFE_RE.fullmatch(ch)})
            return (
                f"guest command line {c!r} has characters GRUB's config would quote, expand or escape "
                f"({' '.join(bad)}); under Bochs it may use only letters, digits, spaces and _=,.:/+@%~-"
            )
        if c != " ".join(c.split()):
            return (
                f"guest command line {c!r} has leading, trailing or repeated spaces, which GRUB does not "
                "keep (one space between words)"
            )
        return None

    def check_grub(self) -> None:
        """Raise LaunchError(USAGE) when the GRUB ISO cannot carry this guest (see grub_problem)."""
        problem = self.grub_problem()
        if problem is not None:
            raise LaunchError(ExitCode.USAGE, problem)

    def iso_files(self) -> dict[str, Path]:
        """ISO path -> host file, for the files boot/mkiso.sh copies into the ISO."""
        files = {ISO_GUEST_PATH: self.kernel}
        if self.initrd is not None:
            files[ISO_INITRD_PATH] = self.initrd
        return files

    def grub_module_lines(self) -> list[str]:
        """The ``module`` lines boot/mkiso.sh writes after the ``multiboot`` line of grub.cfg (the path
        twice: GRUB's module string is the words after the file, and it must read "FILE ARGS")."""
        lines = [f"module --nounzip {ISO_GUEST_PATH} {ISO_GUEST_PATH} {self.cmdline}".rstrip()]
        if self.initrd is not None:
            lines.append(f"module --nounzip {ISO_INITRD_PATH} {ISO_INITRD_PATH} {INITRD_ARGS}")
        return lines

    def mkiso_args(self) -> list[str]:
        """The extra arguments of boot/mkiso.sh: ``GUEST GUEST_ARGS [INITRD]``."""
        args = [str(self.kernel), self.cmdline]
        if self.initrd is not None:
            args.append(str(self.initrd))
        return args

    def digest(self) -> str:
        """sha256 over the kernel's and initrd's contents and the command line (ISO cache key part)."""
        h = hashlib.sha256(b"hvtrace guest v1\0")
        _hash_file(h, self.kernel)
        if self.initrd is not None:
            h.update(b"initrd\0")
            _hash_file(h, self.initrd)
        h.update(b"cmdline\0")
        h.update(self.cmdline.encode())
        return h.hexdigest()


@dataclass(frozen=True)
class LaunchOptions:
    """What the `run`/`capture`/`tui` options give a new session (see :func:`launch_options`)."""

    hv_cmdline: str
    guest: GuestSpec | None
    memory_mb: int
    #: ``--cpu-model`` as given (QEMU only; hvtrace adds its back end's needs, qemu_options.cpu_option).
    cpu_model: str | None = None
    #: ``--qemu-arg`` values split into QEMU argv words (QEMU only).
    qemu_args: tuple[str, ...] = ()
    cpus: int = 1

    def session_args(self) -> SessionArgs:
        """The keywords a new session takes from these options (launch.make_session, Capture.start)."""
        args = {f.name: getattr(self, f.name) for f in fields(self)}
        args["cmdline"] = args.pop("hv_cmdline")
        return cast(SessionArgs, args)


class SessionArgs(TypedDict):
    """:meth:`LaunchOptions.session_args`: the same keyword names in every session-building call (the
    fields of LaunchOptions, ``hv_cmdline`` as ``cmdline``)."""

    cpus: int
    memory_mb: int
    cmdline: str
    guest: GuestSpec | None
    cpu_model: str | None
    qemu_args: tuple[str, ...]


def launch_options(args: argparse.Namespace, *, hv_parts: tuple[str, ...] = ()) -> LaunchOptions:
    """Resolve ``--guest/--initrd/--append/--hv-append/--memory/--cpu-model/--qemu-arg`` (raises
    LaunchError; the QEMU options with ``--backend bochs`` are a usage error).

    With ``--guest``, ``--append`` is the guest kernel's command line; without it, ``--append`` is
    appended to the hypervisor's command line. ``--hv-append`` always goes to the hypervisor, after
    ``hv_parts`` (options the caller derived, e.g. ``fault=ud``). ``--memory`` left out means the
    parser's ``default_memory_mb``, raised to :data:`GUEST_MIN_MEMORY_MB` with a guest.
    """
    kernel: Path | None = getattr(args, "guest", None)
    initrd: Path | None = getattr(args, "initrd", None)
    append = (getattr(args, "append", "") or "").strip()
    hv_append = (getattr(args, "hv_append", "") or "").strip()
    if initrd is not None and kernel is None:
        raise LaunchError(ExitCode.USAGE, "--initrd needs --guest (the initrd is the guest kernel's)")
    guest = GuestSpec(kernel, initrd, append) if kernel is not None else None
    parts = [*hv_parts, hv_append] + ([append] if guest is None else [])
    memory: int | None = getattr(args, "memory", None)
    if memory is None:
        memory = int(getattr(args, "default_memory_mb", GUEST_MIN_MEMORY_MB))
        if guest is not None:
            memory = max(memory, GUEST_MIN_MEMORY_MB)
    cpu_model: str | None = getattr(args, "cpu_model", None)
    qemu_args = split_qemu_args(getattr(args, "qemu_arg", None) or [])
    if cpu_model is not None:
        cpu_option(cpu_model)  # malformed, or turns off what the back end needs: a usage error now
    refuse_qemu_options(getattr(args, "backend", None), cpu_model, qemu_args)
    return LaunchOptions(
        hv_cmdline=" ".join(p for p in parts if p),
        guest=guest,
        memory_mb=memory,
        cpu_model=cpu_model,
        qemu_args=qemu_args,
        cpus=int(getattr(args, "cpus", 1)),
    )
