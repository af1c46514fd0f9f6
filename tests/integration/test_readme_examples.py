"""Every command of README.md's ``sh`` examples, run as written after the set-up command, succeeds.

The commands are read from the README itself, so it cannot drift from the tool. They run in README
order, in independent chains (a command follows the one whose output it reads: readme_chains), each
chain in its own directory (the README's relative paths, hv/ and build/, are linked into it), with
``hvtrace`` from this checkout's venv on PATH. Long-running ones run bounded and are stopped the way
the README says: an attached `hvtrace run ... &` by `kill PID` (exit 143), the TUI by `q` (exit 0),
`hvtrace top` without --once by Ctrl-C (exit 0). The README's RAM-file placeholder is the one that run
printed.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvtrace import paths
from tests.integration.conftest import RAM_RE, kill_leftovers
from tests.integration.readme_commands import (
    ATTACHED,
    EXTERNAL,
    ONESHOT,
    RAM_PLACEHOLDER_RE,
    SETUP,
    TOP_LOG,
    TUI,
    Command,
    readme_chains,
    readme_commands,
)

pytestmark = [pytest.mark.slow, pytest.mark.qemu, pytest.mark.bochs]

ROOT = paths.repo_root()
COMMANDS = readme_commands(ROOT / "README.md")
CHAINS = readme_chains(COMMANDS)
PID_RE = re.compile(r"^hvtrace: (?:qemu|bochs) pid (\d+)$", re.MULTILINE)


def read_until(fd: int, pattern: bytes, timeout: float, seen: bytearray) -> bool:
    """Read ``fd`` into ``seen`` until ``pattern`` appears (True) or ``timeout`` s pass / EOF (False)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if pattern in seen:
            return True
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty whose other end closed
                return pattern in seen
            if not chunk:
                return pattern in seen
            seen += chunk
    return pattern in seen


class Runner:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        self.ram: str | None = None
        self.attached: list[tuple[subprocess.Popen[bytes], bytearray]] = []

    def argv(self, line: str) -> list[str]:
        if RAM_PLACEHOLDER_RE.search(line):
            assert self.ram is not None, f"{line!r}: no running session printed a RAM file before it"
            line = RAM_PLACEHOLDER_RE.sub(self.ram, line)
        return ["bash", "-c", f"exec {line}"]  # a shell: the README's globs and quotes, as written

    def popen(self, line: str, **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(line), cwd=self.cwd, env=self.env, start_new_session=True, **kw)  # type: ignore[call-overload, no-any-return]

    def oneshot(self, line: str) -> None:
        r = subprocess.run(
            self.argv(line), cwd=self.cwd, env=self.env, capture_output=True, timeout=900, check=False
        )
        assert r.returncode == 0, f"{line!r} exited {r.returncode}:\n{r.stdout.decode()}\n{r.stderr.decode()}"

    def attach(self, line: str) -> None:
        proc = self.popen(line.rstrip("&").strip(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen = bytearray()
        self.attached.append((proc, seen))
        assert proc.stdout is not None
        assert read_until(proc.stdout.fileno(), b"storm: every CPU", 180, seen), seen.decode()
        text = seen.decode()
        assert "runs until stopped" in text, text
        m = RAM_RE.search(text)
        assert m is not None, text
        self.ram = m.group(1)

    def top_log(self, line: str) -> None:
        proc = self.popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen = bytearray()
        try:
            assert proc.stdout is not None
            assert read_until(proc.stdout.fileno(), b"total=", 180, seen), seen.decode()
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            assert proc.wait(timeout=60) == 0, seen.decode()
        finally:
            self.reap(proc, seen)

    def tui(self, line: str) -> None:
        master, slave = pty.openpty()
        env = {**self.env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        proc = subprocess.Popen(
            self.argv(line),
            cwd=self.cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        seen = bytearray()
        try:
            # The reason table's header: the app is up and showing data.
            assert read_until(master, b"PER SEC", 240, seen), seen.decode(errors="replace")[-2000:]
            os.write(master, b"q")
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                read_until(master, b"\x00never", 0.5, seen)  # keep the pty drained
            assert proc.wait(timeout=5) == 0, seen.decode(errors="replace")[-2000:]
        finally:
            os.close(master)
            self.reap(proc, seen)

    def reap(self, proc: subprocess.Popen[bytes], seen: bytearray) -> list[str]:
        if proc.poll() is None:  # a test failed midway: stop it as documented, then for sure
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        m = PID_RE.search(seen.decode(errors="replace"))
        return kill_leftovers(int(m.group(1)) if m else None)

    def stop_attached(self) -> None:
        for proc, seen in self.attached:
            proc.send_signal(signal.SIGTERM)  # `kill PID`, as the run printed
            assert proc.wait(timeout=60) == 143
            assert proc.stdout is not None
            seen.extend(proc.stdout.read())
            self.reap(proc, seen)
        self.attached.clear()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    for name in ("hv", "build"):  # the README's relative paths
        (tmp_path / name).symlink_to(ROOT / name)
    r = Runner(tmp_path)
    try:
        yield r
    finally:
        problems = [p for proc, seen in r.attached for p in r.reap(proc, seen)]
        ram = r.ram
        if ram is not None and Path(ram).exists():
            Path(ram).unlink()
        assert not problems, problems


def test_readme_lists_the_commands_this_test_knows_how_to_run() -> None:
    hows = {c.how for c in COMMANDS}
    assert {ATTACHED, TUI, TOP_LOG, ONESHOT} <= hows
    assert [c.line for c in COMMANDS if c.how == SETUP] == ["./bootstrap demo", "./bootstrap test"]
    # The --symbols examples read a Linux capture and its symbols, made as the prose says: not run here.
    assert [c.line.split()[1:3] for c in COMMANDS if c.how == EXTERNAL] == [
        ["report", "linux.hvt"],
        ["export", "linux.hvt"],
    ]
    assert all(c.line.startswith(("hvtrace ", "./bootstrap ")) for c in COMMANDS)


def chain_id(chain: list[Command]) -> str:
    words = chain[0].line.split()[1:4]
    return " ".join(words) + (f" +{len(chain) - 1}" if len(chain) > 1 else "")


def test_the_chains_hold_every_runnable_command_once() -> None:
    runnable = [c for c in COMMANDS if c.how not in (SETUP, EXTERNAL)]
    assert sorted(c.line for chain in CHAINS for c in chain) == sorted(c.line for c in runnable)
    # storm.hvt's readers follow its capture; the RAM file's readers follow the attached run.
    storm = next(ch for ch in CHAINS if "-o storm.hvt" in ch[0].line)
    assert any(c.line.startswith("hvtrace tui --replay storm.hvt") for c in storm)
    attached = next(ch for ch in CHAINS if ch[0].how == ATTACHED)
    assert [c.how for c in attached[1:]] == [ONESHOT, ONESHOT, TUI]


# A chain is a few minutes of work (Linux boots, captures, ISO builds); each runs in its own directory,
# and an attached run lives only as long as the chain that reads its RAM file.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("chain", CHAINS, ids=[chain_id(c) for c in CHAINS])
def test_readme_example_succeeds_as_written(runner: Runner, chain: list[Command]) -> None:
    # The set-up command (./bootstrap: venv, image, guest assets with the initramfs) ran before the
    # suite; `./bootstrap test` is the suite itself.
    assert (ROOT / "build" / "assets" / "initramfs.cpio.gz").is_file(), "run ./bootstrap setup first"
    for cmd in chain:
        if cmd.how == ATTACHED:
            runner.attach(cmd.line)
        elif cmd.how == TUI:
            runner.tui(cmd.line)
        elif cmd.how == TOP_LOG:
            runner.top_log(cmd.line)
        else:
            runner.oneshot(cmd.line)
    runner.stop_attached()
