"""The base of every hv-* command: options declared with argparse, one-line errors, ``hv NAME``
aliases, completion, colour."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

import gdb

from . import target
from .model import HvError
from .options import OptionParser

_state = {"colour": False}


def colour() -> bool:
    return _state["colour"]


def set_colour(on: bool) -> None:
    _state["colour"] = on


def emit(lines: Iterable[str]) -> None:
    gdb.write("".join(f"{line}\n" for line in lines))


def bold(text: str) -> str:
    return f"\x1b[1m{text}\x1b[0m" if _state["colour"] else text


class HvCommand(gdb.Command):  # type: ignore[misc]
    """Base class: subclasses set ``NAME`` (without the hv- prefix), declare their options in
    ``declare`` and implement ``run`` over the parsed Namespace (as pwndbg's ArgparsedCommand does)."""

    NAME = ""
    #: Words TAB completion offers besides the declared options (sub-commands, memory types, ...).
    WORDS: Sequence[str] = ()

    def __init__(self, name: str) -> None:
        super().__init__(name, gdb.COMMAND_DATA)
        self.label = f"hv-{self.NAME}"
        self.parser = OptionParser(self.label)
        self.declare(self.parser)

    def declare(self, p: OptionParser) -> None:
        """Add this command's options and positional words to ``p`` (none by default)."""

    def invoke(self, arg: str, from_tty: bool) -> None:
        try:
            args = self.parser.parse(gdb.string_to_argv(arg))
            with target.physical():
                self.run(args)
        except HvError as e:
            raise gdb.GdbError(f"{self.label}: {e}") from None

    def run(self, args: argparse.Namespace) -> None:
        raise NotImplementedError

    def words(self) -> Sequence[str]:
        return [*self.parser.option_words(), *self.WORDS]

    def complete(self, text: str, word: str | None) -> list[str]:
        # gdb breaks words at '-', so `word` may be a tail of the token being typed: match the whole
        # token, return what replaces `word`.
        token = "" if not text or text[-1].isspace() else text.rsplit(maxsplit=1)[-1]
        cut = len(token) - len(word or "")
        return [w[cut:] for w in self.words() if w.startswith(token)]
