"""Drive the real `hvtrace` CLI (``sys.executable -m hvtrace``) against real QEMU and Bochs.

Every run happens in its own session (process group); afterwards we prove that the emulator the run
started (by the pid it printed) and its process group are gone, and that its temp files are removed.
Anything still alive is killed in ``finally`` and the test fails.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hvtrace import guest_assets as ga
from hvtrace import paths
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.gdbmi import Gdb
from hvtrace.image import ensure_image
from hvtrace.launch import procs
from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.sources import qmp_dump_guest_memory
from tests.components import missing

PID_RE = re.compile(r"^hvtrace: (?:qemu|bochs) pid (\d+)$", re.MULTILINE)
RAM_RE = re.compile(r"^hvtrace: ram file (\S+)$", re.MULTILINE)
QMP_RE = re.compile(r"^hvtrace: qmp socket (\S+)$", re.MULTILINE)
BOCHS_DIR_RE = re.compile(r"^hvtrace: bochs dir (\S+) ", re.MULTILINE)
KEPT_RE = re.compile(r"^hvtrace: kept (\S+) for post-mortem", re.MULTILINE)


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def emulator_pid(self) -> int | None:
        m = PID_RE.search(self.stdout)
        return int(m.group(1)) if m else None

    @property
    def ram_file(self) -> Path | None:
        m = RAM_RE.search(self.stdout)
        return Path(m.group(1)) if m else None

    @property
    def qmp_socket(self) -> Path | None:
        m = QMP_RE.search(self.stdout)
        return Path(m.group(1)) if m else None

    @property
    def bochs_dir(self) -> Path | None:
        m = BOCHS_DIR_RE.search(self.stdout)
        return Path(m.group(1)) if m else None

    @property
    def kept_dir(self) -> Path | None:
        m = KEPT_RE.search(self.stderr)
        return Path(m.group(1)) if m else None

    def describe(self) -> str:
        return (
            f"argv={self.argv}\nexit={self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def hvtrace_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hvtrace", *args]


def kill_leftovers(pid: int | None) -> list[str]:
    """Kill the emulator (and its group) if it survived; return what had to be killed."""
    if pid is None:
        return []
    problems = []
    if procs.pid_alive(pid):
        problems.append(f"emulator pid {pid} still alive")
        os.kill(pid, signal.SIGKILL)
    members = procs.group_members(pid)
    if members:
        problems.append(f"process group {pid} still has {members}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return problems


def assert_clean(run: Run) -> None:
    """No process and no temp file of this run is left behind."""
    pid = run.emulator_pid
    if pid is not None:
        assert procs.wait_gone(pid, 5.0), f"emulator {pid} left running\n{run.describe()}"
        assert procs.group_members(pid) == [], f"process group {pid} left running\n{run.describe()}"
    if run.ram_file is not None:
        assert not run.ram_file.exists(), f"RAM file {run.ram_file} left behind"
    if run.qmp_socket is not None:
        assert not run.qmp_socket.parent.exists(), f"temp dir {run.qmp_socket.parent} left behind"
    if run.bochs_dir is not None and run.kept_dir is None:
        assert not run.bochs_dir.exists(), f"Bochs temp dir {run.bochs_dir} left behind"


RunFn = Callable[..., Run]


@pytest.fixture
def hvtrace_run() -> Iterator[RunFn]:
    """Run `hvtrace ARGS...` to completion; clean-up checks and kills happen in ``finally``."""
    started: list[Run] = []
    kept: list[Path] = []

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> Run:
        argv = hvtrace_argv(*args)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
        result = Run(argv, proc.returncode, out, err)
        started.append(result)
        if result.kept_dir is not None:
            kept.append(result.kept_dir)
        return result

    try:
        yield run
    finally:
        problems = []
        for r in started:
            problems += kill_leftovers(r.emulator_pid)
            if r.ram_file is not None and r.ram_file.exists():
                problems.append(f"RAM file {r.ram_file} left behind")
                r.ram_file.unlink()
        for d in kept:
            shutil.rmtree(d, ignore_errors=True)
        assert not problems, "; ".join(problems)


@dataclass
class Live:
    """A running `hvtrace run` whose output we read while it runs."""

    proc: subprocess.Popen[bytes]
    stdout_lines: list[str]

    def read_until(self, pattern: str, timeout: float) -> str:
        """Read stdout lines until one matches ``pattern`` (regex); fail after ``timeout`` s."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        buf = b""
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                self.stdout_lines.append(line)
                if rx.search(line):
                    return line
        shown = "\n".join(self.stdout_lines)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{shown}")

    def stderr_text(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    @property
    def emulator_pid(self) -> int | None:
        m = PID_RE.search("\n".join(self.stdout_lines))
        return int(m.group(1)) if m else None

    @property
    def ram_file(self) -> Path | None:
        m = RAM_RE.search("\n".join(self.stdout_lines))
        return Path(m.group(1)) if m else None


@pytest.fixture
def hvtrace_live() -> Iterator[Callable[..., Live]]:
    """Start `hvtrace ARGS...` in the background (own session); killed in ``finally`` if still alive."""
    lives: list[Live] = []

    def start(*args: str) -> Live:
        proc = subprocess.Popen(
            hvtrace_argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        live = Live(proc, [])
        lives.append(live)
        return live

    try:
        yield start
    finally:
        problems = []
        for live in lives:
            if live.proc.poll() is None:
                os.killpg(live.proc.pid, signal.SIGKILL)
            live.proc.wait()
            problems += kill_leftovers(live.emulator_pid)
            ram = live.ram_file
            if ram is not None and ram.exists():
                ram.unlink()
            m = BOCHS_DIR_RE.search("\n".join(live.stdout_lines))
            if m is not None:  # a Bochs dir kept for post-mortem: ours to remove
                shutil.rmtree(m.group(1), ignore_errors=True)
        assert not problems, "; ".join(problems)


def built_guest(name: str) -> Path:
    """hv/build/guests/NAME.elf, built with the image by `make -C hv` (a no-op when up to date)."""
    elf = paths.build_dir() / "guests" / f"{name}.elf"
    r = subprocess.run(["make", "-s", "-C", str(paths.hv_dir())], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert elf.is_file(), f"make -C hv did not build {elf}"
    return elf


@pytest.fixture(scope="module")
def mbtest() -> Path:
    """The project's multiboot test kernel (boot/guests/mbtest)."""
    return built_guest("mbtest")


@pytest.fixture(scope="session", autouse=True)
def built_image() -> Path:
    """Build the image once up front, the way `hvtrace run` does (only when missing or stale)."""
    try:
        return ensure_image()
    except LaunchError as e:
        pytest.fail(f"cannot build the hypervisor image:\n{e.message}")


def storm_capture(run: RunFn, out: Path, *limit: str) -> None:
    """A 2-CPU QEMU CPUID storm captured into ``out`` until ``limit`` (e.g. "--count", "3000")."""
    r = run(
        "capture", "--backend", "qemu", "--cpus", "2", "--append", "storm=1", *limit,
        "--quiet", "-o", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.describe()


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``cond`` until it is true; a timeout fails the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def gdb_on(session: QemuSession, ready: str) -> Iterator[Gdb]:
    """Start ``session``, wait for a console line containing ``ready``, then attach gdb with hvtrace's
    extension to its gdbstub; gdb and the session are stopped at the end."""
    gdb: Gdb | None = None
    try:
        session.start()
        wait_for(lambda: any(ready in line for line in session.lines), 60, f"a console line with {ready!r}")
        gdb = Gdb()
        gdb.load()
        gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}")
        yield gdb
    finally:
        if gdb is not None:
            gdb.close()
        session.close()


def dump_storm_core(core: Path) -> Path:
    """A 1-CPU CPUID storm under QEMU written to ``core`` by QMP dump-guest-memory while it runs (the
    input of the `hvtrace gdb --core` tests)."""
    with QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=120) as s:
        wait_for(lambda: any(line.startswith("storm:") for line in s.lines), 60, "the storm")
        assert s.qmp_socket is not None
        qmp_dump_guest_memory(s.qmp_socket, core)
    return core


Linux = tuple[ga.GuestAssets, Path]


@pytest.fixture(scope="module")
def linux(tmp_path_factory: pytest.TempPathFactory) -> Linux:
    """Debian's kernel and busybox (fetched by ``./bootstrap setup`` into build/assets/) and an initramfs
    built for the test module. Unavailable assets skip the test naming why; in CI they fail it."""
    try:
        assets = ga.fetch_assets()
    except ga.AssetsUnavailable as e:
        missing(f"Linux guest assets unavailable (apt could not fetch them):\n{e.message}")
    except LaunchError as e:
        if e.code != ExitCode.TOOL_MISSING:
            raise
        missing(f"Linux guest assets need apt/dpkg: {e.message}")
    initrd = ga.build_initramfs(assets.busybox, tmp_path_factory.mktemp("linux") / "initramfs.cpio.gz")
    return assets, initrd


@pytest.fixture
def gz_initrd(tmp_path: Path) -> Path:
    """A gzip-compressed initrd: its size proves nobody unzipped it on the way."""
    path = tmp_path / "initrd.gz"
    path.write_bytes(gzip.compress(b"hvtrace initrd payload\n" * 4096, mtime=0))
    return path
