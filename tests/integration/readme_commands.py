"""The commands of README.md's ``sh`` code blocks, in order, as the README test runs them: continuation
lines joined, trailing comments dropped, each classified by how it ends."""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Command:
    line: str
    how: str


def classify(line: str) -> str:
    if line.startswith("./bootstrap "):
        return SETUP
    if line.endswith("&"):
        return ATTACHED
    if line.startswith("hvtrace tui"):
        return TUI
    if line.startswith("hvtrace top") and "--once" not in line.split():
        return TOP_LOG
    return ONESHOT


def readme_commands(readme: Path) -> list[Command]:
    commands = []
    for block in BLOCK_RE.findall(readme.read_text()):
        text = block.replace("\\\n", " ")
        for raw in text.splitlines():
            line = re.split(r"\s#\s", raw, maxsplit=1)[0].strip()
            line = re.sub(r"\s+", " ", line)
            if line:
                commands.append(Command(line, classify(line)))
    return commands
