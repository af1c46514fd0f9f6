"""The commands of README.md's ``sh`` code blocks, in order, as the README test runs them: continuation
lines joined, trailing comments dropped, each classified by how it ends."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

BLOCK_RE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: The README's placeholder for the RAM file a running `hvtrace run` printed.
RAM_PLACEHOLDER_RE = re.compile(r"/dev/shm/hvtrace-(?:\.\.\.|…)\.ram")

#: How a command ends: by itself, or (long-running) how the README says to stop it.
SETUP = "setup"  # ./bootstrap: the set-up command itself (and the whole test suite): not run here
ATTACHED = "attached"  # `hvtrace run ... &`: runs until stopped (kill PID, exit 143)
TUI = "tui"  # interactive: runs until `q`
TOP_LOG = "top-log"  # `hvtrace top` without --once: runs until Ctrl-C
ONESHOT = "oneshot"  # ends by itself with exit 0
EXTERNAL = "external"  # reads a file no README command makes (a Linux capture, its symbols): listed, not run

#: Inputs the README's examples use that no README command creates (the --symbols examples read a Linux
#: boot's capture and its System.map / kallsyms, made as the README's prose says).
EXTERNAL_INPUTS = ("linux.hvt",)


@dataclass(frozen=True)
class Command:
    line: str
    how: str


def classify(line: str) -> str:
    if line.startswith("./bootstrap "):
        return SETUP
    if any(name in line.split() for name in EXTERNAL_INPUTS):
        return EXTERNAL
    if line.endswith("&"):
        return ATTACHED
    if line.startswith("hvtrace tui"):
        return TUI
    if line.startswith("hvtrace top") and "--once" not in line.split():
        return TOP_LOG
    return ONESHOT


def _complete(text: str) -> bool:
    """Whether ``text`` is whole shell words (a quoted SQL statement may span lines)."""
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def readme_commands(readme: Path) -> list[Command]:
    commands = []
    for block in BLOCK_RE.findall(readme.read_text()):
        pending = ""
        for raw in block.replace("\\\n", " ").splitlines():
            if not pending and raw.lstrip().startswith("#"):
                continue  # a comment line between commands
            # A trailing comment, on a command's first line (later lines may be inside quotes).
            text = raw if pending else re.split(r"\s#\s", raw, maxsplit=1)[0]
            pending = f"{pending}\n{text}" if pending else text.strip()
            if pending and _complete(pending):
                line = pending if "\n" in pending else re.sub(r"\s+", " ", pending)
                commands.append(Command(line, classify(line)))
                pending = ""
        assert not pending, f"unterminated command in README.md: {pending!r}"
    return commands


def _words(line: str) -> list[str]:
    return shlex.split(line.rstrip("&"))


def _output(line: str) -> str | None:
    """The file a command writes (its -o / --output / --iso argument), if any."""
    words = _words(line)
    for flag in ("-o", "--output", "--iso"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return None


def readme_chains(commands: list[Command]) -> list[list[Command]]:
    """The runnable commands in independent chains, each in README order: a command joins the chain
    of the earlier command whose output file it reads, or of the attached run whose RAM file it names
    (that run is stopped once its chain is done); every other command is a chain of its own."""
    chains: list[list[Command]] = []
    writer: dict[str, list[Command]] = {}  # output file -> the chain that makes it
    attached: list[Command] | None = None
    for cmd in commands:
        if cmd.how in (SETUP, EXTERNAL):
            continue
        reads = [writer[w] for w in _words(cmd.line) if w in writer]
        if RAM_PLACEHOLDER_RE.search(cmd.line):
            assert attached is not None, f"{cmd.line!r}: no `hvtrace run ... &` before it"
            reads.append(attached)
        if reads:
            chain = reads[0]
            assert all(r is chain for r in reads), f"{cmd.line!r} reads the outputs of two chains"
            chain.append(cmd)
        else:
            chain = [cmd]
            chains.append(chain)
        if cmd.how == ATTACHED:
            attached = chain
        out = _output(cmd.line)
        if out is not None:
            writer[out] = chain
    return chains
