"""Time from the emulator's start to the first exit record the host reads (issue 18 item 4).

`Capture.start` boots the hypervisor's self-test (1 CPU) the way `hvtrace capture` does, and
`collect(count=1)` waits for the first record. The clock starts when the emulator process is spawned
(the session's "<backend> pid N" line; the image is built before, and Bochs' GRUB ISO comes from its
cache after the first round). Printed per round, then the median, with the milestones between:

    console   the hypervisor's first console line reached the host
    attached  the host found the rings (QEMU: discovery in the shared RAM file; Bochs: at once, the
              port-0xE9 frame stream)
    record    the first record read
    tsc       that record's TSC: the CPU's cycles since reset. Under Bochs (clock: sync=none) it counts
              emulated instructions at the nominal 5 M/s, HLT time skipped: a measure of the work
              before the first exit that the shared machine's load does not move

Goals (issue 18): 0.3 s QEMU, 2 s Bochs. No asserts: numbers for the notes.

    python benchmarks/first_record.py                  # QEMU and Bochs, 3 rounds each
    python benchmarks/first_record.py --backend qemu --rounds 5
    python benchmarks/first_record.py --backend qemu --qboot   # QEMU's qboot instead of SeaBIOS

--qboot shows the firmware's share: qboot reaches the multiboot kernel about twice as fast as SeaBIOS
under TCG, but leaves the MTRRs off (the hypervisor prints "MTRRs disabled"), so hvtrace keeps SeaBIOS.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

from hvtrace.image import ensure_image
from hvtrace.trace.capture import Capture

MILESTONES = ("console", "attached", "record")


@dataclass
class Round:
    """Seconds from the emulator's spawn to each milestone."""

    spawned: float | None = None
    at: dict[str, float] = field(default_factory=dict)
    tsc: int = 0

    def mark(self, name: str) -> None:
        if name not in self.at:
            self.at[name] = time.monotonic()

    def since_spawn(self, name: str) -> float:
        assert self.spawned is not None, "the session never reported its emulator's pid"
        return self.at[name] - self.spawned


QBOOT = "/usr/share/qemu/qboot.rom"


def one_round(backend: str, qemu_args: tuple[str, ...]) -> Round:
    r = Round()

    def on_info(message: str) -> None:
        if message.startswith(f"{backend} pid ") and r.spawned is None:
            r.spawned = time.monotonic()

    with Capture.start(
        backend=backend,
        timeout=600,
        on_info=on_info,
        on_line=lambda _line: r.mark("console"),
        qemu_args=qemu_args if backend == "qemu" else (),
    ) as cap:
        r.mark("attached")
        recs = cap.collect(count=1)
        r.mark("record")
    if not len(recs):
        raise RuntimeError(f"{backend}: the session ended without a record")
    r.tsc = int(recs["tsc"][0])
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("qemu", "bochs"), action="append", help="default: both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--qboot", action="store_true", help=f"QEMU boots with {QBOOT} instead of SeaBIOS")
    args = ap.parse_args()
    ensure_image()
    goals = {"qemu": 0.3, "bochs": 2.0}
    for backend in args.backend or ("qemu", "bochs"):
        qemu_args = ("-bios", QBOOT) if args.qboot else ()
        rounds = [one_round(backend, qemu_args) for _ in range(args.rounds)]
        for i, r in enumerate(rounds, 1):
            steps = ", ".join(f"{m} {r.since_spawn(m):.3f}" for m in MILESTONES)
            print(f"{backend:5} round {i}: {steps} s; tsc {r.tsc / 1e6:.1f} M")
        median = {m: statistics.median(r.since_spawn(m) for r in rounds) for m in MILESTONES}
        steps = ", ".join(f"{m} {median[m]:.3f}" for m in MILESTONES)
        tsc = statistics.median(r.tsc for r in rounds)
        print(
            f"{backend:5} median of {args.rounds}: {steps} s; first record {median['record']:.3f} s "
            f"(goal {goals[backend]:g} s), tsc {tsc / 1e6:.1f} M"
        )


if __name__ == "__main__":
    main()
