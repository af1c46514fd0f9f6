"""Where a capture's records come from, behind one small protocol: the rings in shared RAM (QEMU,
read live by :class:`~hvtrace.trace.reader.RingSet`) or the port-0xE9 frame stream (Bochs)."""

from __future__ import annotations

from typing import Protocol

from hvtrace.trace.frames import FrameStreamSource
from hvtrace.trace.reader import RingSet
from hvtrace.trace.records import Records


class RecordStream(Protocol):
    name: str

    def poll(self) -> Records: ...

    def alive(self) -> bool: ...

    def lost_by_cpu(self) -> dict[int, int]: ...

    def lost_where(self) -> dict[str, int]:
        """Where the lost records went, all CPUs, by cause (empty when the source cannot tell)."""
        ...

    def detach(self) -> None:
        """The reader leaves (the session may go on without it)."""
        ...


class RingStream:
    """The rings of a RingSet as a RecordStream."""

    def __init__(self, rings: RingSet) -> None:
        self.rings = rings
        self.name = rings.source.name

    def poll(self) -> Records:
        return self.rings.poll()

    def alive(self) -> bool:
        return self.rings.alive()

    def lost_by_cpu(self) -> dict[int, int]:
        return {s.cpu: s.lost for s in self.rings.stats}

    def lost_where(self) -> dict[str, int]:
        """``unread``: full rings while no reader was attached (before this one attached, or a wait
        that ran out); ``reader_behind``: full rings while attached."""
        stats = self.rings.stats
        return {
            "unread": sum(s.lost_unread for s in stats),
            "reader_behind": sum(s.lost_read for s in stats),
        }

    def detach(self) -> None:
        self.rings.detach()


class FrameStream:
    """Bochs' port-0xE9 frames as a RecordStream (``final``: the emulator is gone, read the tail)."""

    def __init__(self, src: FrameStreamSource) -> None:
        self.src = src
        self.name = src.name
        self.final = False

    def poll(self) -> Records:
        return self.src.poll(final=self.final)

    def alive(self) -> bool:
        return self.src.alive()

    def lost_by_cpu(self) -> dict[int, int]:
        return dict(self.src.stats.lost)

    def lost_where(self) -> dict[str, int]:
        return {}  # its losses are damaged or missing frames (lost_by_cpu)

    def detach(self) -> None:
        pass  # a file we only read
