"""Debian's memtest86+ (memtest86+x64.bin, fetched with apt like the Linux guest): a bzImage that is
not relocatable, so the hypervisor loads it at its code32_start, 1 MiB, over where QEMU put the
modules (moved high first). It tests every byte of RAM it is given, on every CPU; the hypervisor's
memory is reserved in its memory map, so it never touches (and cannot corrupt) that.

It draws its screen on COM1 with cursor escapes and never ends by itself: a run is stopped with
SIGTERM once it names its last test (exit 143). Its test list is fixed (#0 address test ... #10 bit
fade); a screen update names a test as ``#N  [name]`` when it starts. On 2 CPUs, bare and under the
hypervisor, the tests seen in the first pass must come in order with the same names, reach the bit-fade test,
and every ``Errors:`` field must read 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hvtrace.guest_assets import QEMU_CPU, fetch_memtest
from hvtrace.launch import procs
from hvtrace.launch.qemu import QEMU
from hvtrace.tools import require_tool
from tests.integration.conftest import Run, assert_clean, hvtrace_argv

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

BANNER = re.compile(r"Memtest86\+ v\d+\.\d+")
TEST_RE = re.compile(r"#(\d+) +\[([^\]]+)\]")
ERRORS_RE = re.compile(r"Errors: *(\d+)")
APPEND = "console=ttyS0,115200 nopause"
MEMORY_MB = 64  # a small machine: memtest86+ reaches its later tests within the run
DEADLINE = 600  # s per run: a failure if the last test is not named by then (about 100 s unloaded)
LAST_TEST = 10  # "Bit fade test": the last of memtest86+ 6.10's list


def screen(raw: bytes) -> str:
    return raw.decode("latin-1")


def named_tests(text: str) -> list[tuple[int, str]]:
    """The tests named on the screen, in order, each once."""
    seen: list[tuple[int, str]] = []
    for number, name in TEST_RE.findall(text):
        test = (int(number), name)
        if test not in seen:
            seen.append(test)
    return seen


def first_pass(text: str) -> str:
    """The screen up to the first naming of the last test: what follows is the next pass. The serial
    console sends screen differences when memtest86+ redraws, not every change, so a short test can go
    unnamed in one pass and be named in the next."""
    last = next((m for m in TEST_RE.finditer(text) if int(m.group(1)) == LAST_TEST), None)
    return text if last is None else text[: last.end()]


def check_memtest_screen(text: str, what: str) -> list[tuple[int, str]]:
    assert BANNER.search(text), f"{what}: no memtest86+ banner\n{text[-2000:]}"
    assert "SMP: 2T" in text, f"{what}: memtest86+ did not find both CPUs"
    assert "Using: All Cores" in text, f"{what}: not testing on both CPUs"
    errors = set(ERRORS_RE.findall(text))
    assert errors == {"0"}, f"{what}: Errors fields {errors}"
    seen = named_tests(first_pass(text))
    numbers = [n for n, _ in seen]
    assert numbers == sorted(numbers), f"{what}: tests out of order {seen}"
    assert numbers[0] == 0, f"{what}: tests seen {seen}"
    assert numbers[-1] == LAST_TEST, f"{what}: tests seen {seen}"
    return seen


def stream_until_last_test(argv: list[str], what: str) -> tuple[int, str]:
    """Run ``argv`` until memtest86+ names its last test (or DEADLINE s pass: a failure), then stop it
    (SIGTERM). Returns the exit status and the screen. A count of tests, not a fixed run time: on a
    loaded machine memtest86+ just takes longer to get there. Its output is drained by a thread until
    the end: memtest86+ redraws all the time, and a writer blocked on a full pipe never exits."""
    proc = procs.spawn(argv, stderr=subprocess.STDOUT)
    out = bytearray()
    assert proc.stdout is not None
    fd = proc.stdout.fileno()

    def read_all() -> None:
        while chunk := os.read(fd, 65536):
            out.extend(chunk)

    drain = threading.Thread(target=read_all, daemon=True)
    drain.start()
    try:
        deadline = time.monotonic() + DEADLINE
        seen = 0  # scanned up to here: memtest86+ redraws faster than a window of the tail would keep
        while time.monotonic() < deadline and drain.is_alive():
            end = len(out)
            if any(n == LAST_TEST for n, _ in named_tests(screen(bytes(out[max(0, seen - 256) : end])))):
                break
            seen = end
            time.sleep(0.5)
        tail = screen(bytes(out))[-2000:]
        assert proc.poll() is None, f"{what}: exited early ({proc.returncode})\n{tail}"
    finally:
        status = procs.stop(proc, grace=60)  # hvtrace stops its QEMU first: slow on a loaded machine
        drain.join(60)
    return status, screen(bytes(out))


def run_bare(memtest: Path) -> str:
    """memtest86+ alone under QEMU (the hypervisor's machine and CPU model), 2 CPUs."""
    qemu = require_tool(QEMU, "for the bare memtest86+ run")
    argv = [
        qemu, "-machine", "q35", "-accel", "tcg", "-cpu", QEMU_CPU, "-smp", "2", "-m", f"{MEMORY_MB}M",
        "-kernel", str(memtest), "-append", APPEND, "-display", "none", "-monitor", "none",
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console", "-no-reboot",
    ]  # fmt: skip
    return stream_until_last_test(argv, "bare QEMU")[1]


@pytest.mark.timeout(2 * DEADLINE + 120)
def test_memtest86plus_runs_its_tests_on_two_cpus_as_bare() -> None:
    memtest = fetch_memtest()
    bare = check_memtest_screen(run_bare(memtest), "bare")
    argv = hvtrace_argv(
        "run", "--cpus", "2", "--memory", f"{MEMORY_MB}M", "--guest", str(memtest), "--append", APPEND,
        "--timeout", str(DEADLINE + 60),
    )  # fmt: skip
    status, text = stream_until_last_test(argv, "hvtrace run")
    run = Run(argv, status, text, "")
    assert run.returncode == 143, run.describe()  # stopped by SIGTERM: memtest86+ kept testing
    assert "not a relocatable kernel" not in run.stdout
    assert re.search(
        r"^guest: Linux kernel .*memtest86\+x64\.bin .*loaded at \[0x100000-", run.stdout, re.M
    ), run.describe()
    assert "guest: CPU 0 enters the guest at 0x100000" in run.stdout
    assert re.search(r"^guest: module 0 moved from 0x[0-9a-f]+ to 0x[0-9a-f]+", run.stdout, re.M), run.stdout
    assert "guest: CPU 0 sent SIPI vector" in run.stdout, run.stdout  # memtest86+ started CPU 1 itself
    hv = check_memtest_screen(run.stdout + run.stderr, "hypervisor")
    # the same tests, same names, same order: every test one run names, the other names alike
    names = dict(bare)
    assert all(names.get(n, name) == name for n, name in hv), (bare, hv)
    assert_clean(run)
