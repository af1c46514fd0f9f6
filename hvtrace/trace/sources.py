"""Guest-physical memory sources behind one interface: ``read(paddr, n) -> bytes`` plus liveness.

- :class:`SharedRamSource`: QEMU's ``memory-backend-file`` RAM file, mmapped and read while the VM runs
  (offset in the file == guest-physical address for RAM below the 32-bit PCI hole; keep guest RAM
  under 2 GiB so q35 maps it all low). Writable: the lossless consumer writes ring tails into it.
- :class:`DumpSource`: a dead VM's memory: raw RAM files at given physical bases (Bochs ``writemem``),
  or QEMU's ``dump-guest-memory`` ELF (PT_LOAD segments by physical address).
- :class:`GdbMemorySource`: reads through a callable (the gdb extension plugs its memory reader in).
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from qemu.qmp import QMPClient

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError


@runtime_checkable
class MemorySource(Protocol):
    """Guest-physical memory. ``read`` raises TraceError(NO_INPUT/BAD_DATA) for unbacked ranges."""

    name: str

    def read(self, paddr: int, n: int) -> bytes: ...

    def alive(self) -> bool:
        """True while the memory can still change (a running VM)."""
        ...


@runtime_checkable
class WritableSource(MemorySource, Protocol):
    def write(self, paddr: int, data: bytes) -> None: ...


@runtime_checkable
class ViewSource(MemorySource, Protocol):
    def view(self, paddr: int, n: int) -> memoryview:
        """Zero-copy view of live memory (the reader copies what it keeps)."""
        ...


@dataclass(frozen=True)
class Segment:
    paddr: int
    size: int
    offset: int  # offset of paddr in the segment's buffer


class _MappedSegments:
    """Physical ranges backed by mmaps; shared by the RAM-file and dump sources."""

    def __init__(self) -> None:
        self._maps: list[tuple[Segment, mmap.mmap]] = []

    def _add(self, seg: Segment, mm: mmap.mmap) -> None:
        self._maps.append((seg, mm))
        self._maps.sort(key=lambda sm: sm[0].paddr)

    def _find(self, paddr: int, n: int) -> tuple[Segment, mmap.mmap]:
        for seg, mm in self._maps:
            if seg.paddr <= paddr and paddr + n <= seg.paddr + seg.size:
                return seg, mm
        raise TraceError(
            ExitCode.BAD_DATA,
            f"{self.name}: physical range [{paddr:#x}, {paddr + n:#x}) is not in the memory",
        )

    name = "memory"

    def segments(self) -> list[Segment]:
        return [seg for seg, _ in self._maps]

    def view(self, paddr: int, n: int) -> memoryview:
        seg, mm = self._find(paddr, n)
        start = seg.offset + paddr - seg.paddr
        return memoryview(mm)[start : start + n]

    def read(self, paddr: int, n: int) -> bytes:
        seg, mm = self._find(paddr, n)
        start = seg.offset + paddr - seg.paddr
        return mm[start : start + n]

    def close(self) -> None:
        for _, mm in self._maps:
            with contextlib.suppress(BufferError):
                mm.close()
        self._maps.clear()

    def alive(self) -> bool:
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited but its parent has not reaped it yet (state Z in /proc, proc(5))."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def _open_map(path: Path, *, writable: bool, what: str) -> mmap.mmap:
    try:
        fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    except FileNotFoundError:
        raise TraceError(
            ExitCode.NO_INPUT, f"{what} {path} does not exist (is the VM still running?)"
        ) from None
    except OSError as e:
        raise TraceError(ExitCode.NO_INPUT, f"cannot open {what} {path}: {e.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise TraceError(ExitCode.BAD_DATA, f"{what} {path} is empty")
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
    finally:
        os.close(fd)


class SharedRamSource(_MappedSegments):
    """QEMU guest RAM file, mapped shared: reads see the running VM, writes reach it (ring tails)."""

    def __init__(self, path: Path, *, writable: bool = True, pid: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = f"RAM file {self.path}"
        self.pid = pid
        self.writable = writable
        mm = _open_map(self.path, writable=writable, what="RAM file")
        self._add(Segment(0, len(mm), 0), mm)

    def alive(self) -> bool:
        if not self.path.exists():
            return False
        if self.pid is None:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _is_zombie(self.pid)  # an exited, not yet reaped QEMU still answers kill(pid, 0)

    def write(self, paddr: int, data: bytes) -> None:
        if not self.writable:
            raise TraceError(ExitCode.USAGE, f"{self.name} is mapped read-only")
        seg, mm = self._find(paddr, len(data))
        start = seg.offset + paddr - seg.paddr
        mm[start : start + len(data)] = data


class DumpSource(_MappedSegments):
    """A dead VM's memory: raw RAM files or a QEMU dump-guest-memory ELF core (read-only)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def alive(self) -> bool:
        return False

    @classmethod
    def raw(cls, files: Sequence[tuple[int, Path]]) -> DumpSource:
        """Raw RAM images, each loaded at a guest-physical base: ``[(0, low.bin), (0x100000, high.bin)]``."""
        src = cls(", ".join(str(p) for _, p in files) or "empty dump")
        for base, path in files:
            mm = _open_map(Path(path), writable=False, what="memory dump")
            src._add(Segment(base, len(mm), 0), mm)
        return src

    @classmethod
    def elf(cls, path: Path) -> DumpSource:
        """QEMU ``dump-guest-memory`` ELF: one segment per PT_LOAD, by its physical address."""
        path = Path(path)
        mm = _open_map(path, writable=False, what="memory dump")
        src = cls(str(path))
        try:
            with path.open("rb") as fh:
                elf = ELFFile(fh)
                loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
                for s in loads:
                    if s["p_filesz"]:
                        src._add(Segment(s["p_paddr"], s["p_filesz"], s["p_offset"]), mm)
        except ELFError as e:
            mm.close()
            raise TraceError(ExitCode.BAD_DATA, f"{path} is not an ELF memory dump: {e}") from None
        if not src._maps:
            mm.close()
            raise TraceError(ExitCode.BAD_DATA, f"{path}: ELF dump without PT_LOAD segments")
        return src

    @classmethod
    def open(cls, path: Path) -> DumpSource:
        """An ELF dump by its magic, else one raw RAM image at physical address 0."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                head = fh.read(4)
        except FileNotFoundError:
            raise TraceError(ExitCode.NO_INPUT, f"memory dump {path} does not exist") from None
        return cls.elf(path) if head == b"\x7fELF" else cls.raw([(0, path)])


class GdbMemorySource:
    """Memory read through gdb (or anything else): ``read_memory(paddr, n) -> bytes`` is given to us."""

    def __init__(
        self,
        read_memory: Callable[[int, int], bytes],
        *,
        alive: Callable[[], bool] | None = None,
        name: str = "gdb memory",
    ) -> None:
        self._read = read_memory
        self._alive = alive
        self.name = name

    def read(self, paddr: int, n: int) -> bytes:
        data = bytes(self._read(paddr, n))
        if len(data) != n:
            raise TraceError(ExitCode.BAD_DATA, f"{self.name}: short read at {paddr:#x} ({len(data)} of {n})")
        return data

    def alive(self) -> bool:
        return self._alive() if self._alive is not None else False


def qmp_dump_guest_memory(qmp_socket: Path, out: Path, timeout: float = 60.0) -> Path:
    """Ask a running QEMU (QMP unix socket) to write its guest memory as an ELF core to ``out``."""

    async def go() -> None:
        client = QMPClient("hvtrace-dump")
        await client.connect(str(qmp_socket))
        try:
            await asyncio.wait_for(
                client.execute("dump-guest-memory", {"paging": False, "protocol": f"file:{out}"}), timeout
            )
        finally:
            await client.disconnect()

    try:
        asyncio.run(go())
    except (TimeoutError, OSError) as e:
        raise TraceError(ExitCode.NO_INPUT, f"QMP dump-guest-memory via {qmp_socket} failed: {e}") from None
    return out
