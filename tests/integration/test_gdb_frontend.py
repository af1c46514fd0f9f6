"""`hvtrace gdb` behaves like gdb: gdb's own option spelling, Ctrl-C, and gdb's exit status.

A real QEMU session (SVM, storm=1) and the real wrapper on a pseudo-terminal (pexpect): Ctrl-C goes to
the terminal's foreground process group, the wrapper and gdb alike, as it does for a user.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from hvtrace.launch.qemu import QemuSession
from tests.integration.conftest import hvtrace_argv, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.qemu]
PROMPT = r"\(gdb\) "


@pytest.fixture(scope="module")
def storm() -> Iterator[QemuSession]:
    session = QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=300)
    try:
        session.start()
        wait_for(lambda: any("storm:" in line for line in session.lines), 60, "the storm")
        yield session
    finally:
        session.close()


def gdb_batch(session: QemuSession, *options: str) -> subprocess.CompletedProcess[str]:
    argv = hvtrace_argv("gdb", "--port", str(session.gdb_port), *options)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_gdb_spelling_of_batch_ex_and_x(storm: QemuSession, tmp_path: Path) -> None:
    r = gdb_batch(storm, "-nx", "-batch", "-ex", "hv-cpus", "-q")
    assert r.returncode == 0, r.stderr
    assert "CPU 0 SVM launched" in r.stdout
    script = tmp_path / "cmds.gdb"
    script.write_text("echo from-x-file\\n\nhv-break list\n")
    r = gdb_batch(storm, "-nx", "-batch", "-x", str(script))
    assert r.returncode == 0, r.stderr
    assert "from-x-file" in r.stdout
    assert "no exit breaks" in r.stdout
    # after --, gdb options go through as they are
    r = gdb_batch(storm, "-batch", "--", "-nx", "-ex", "echo after-dashdash\\n")
    assert r.returncode == 0, r.stderr
    assert "after-dashdash" in r.stdout


def test_exit_status_is_gdbs(storm: QemuSession) -> None:
    # gdb -batch exits 1 when its last command failed; the wrapper hands that on
    r = gdb_batch(storm, "-nx", "-batch", "-ex", "hv-no-such-command")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    r = gdb_batch(storm, "-nx", "-batch", "-ex", "quit 7")
    assert r.returncode == 7, (r.stdout, r.stderr)


def test_ctrl_c_during_continue_interrupts_the_target_and_gdb_stays(storm: QemuSession) -> None:
    quiet = ["-iex", "set pagination off", "-iex", "set confirm off"]
    argv = hvtrace_argv("gdb", "--port", str(storm.gdb_port), "-nx", *quiet)
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=60, dimensions=(50, 200))
    try:
        child.expect(PROMPT)
        child.sendline("continue")
        child.expect("Continuing.")
        child.sendintr()  # ^C on the terminal: SIGINT to the wrapper and to gdb
        child.expect("SIGINT")
        child.expect(PROMPT)
        assert child.isalive()
        child.sendline("hv-cpus")
        child.expect(r"CPU 0 SVM launched ring \d+/\d+ exits \d+")
        child.expect(PROMPT)
        child.sendline("quit 3")
        child.expect(pexpect.EOF)
        child.close()
        assert "Traceback" not in (child.before or "")
        assert "KeyboardInterrupt" not in (child.before or "")
        assert child.exitstatus == 3, (child.exitstatus, child.signalstatus)
    finally:
        if child.isalive():
            child.terminate(force=True)
