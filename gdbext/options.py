"""How an hv-* command declares its options: an argparse parser whose every error is one HvError line.

Pure (no gdb import), so the option handling is unit-tested outside gdb. argparse's own wording is
replaced by the commands' ("option --cpu needs a value", "unknown option '--x' (options: ...)"), and
value types raise HvError themselves (argparse passes any other exception through unchanged), so
"bad CPU 'x' (expected a number ...)" reaches the user as it is.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

from .model import HvError, parse_int


def number(what: str) -> Callable[[str], int]:
    """A non-negative number option (hex or decimal); ``what`` names it in the error."""

    def conv(text: str) -> int:
        return parse_int(text, what)

    return conv


class OptionParser(argparse.ArgumentParser):
    """The options of one hv-* command; :meth:`parse` turns gdb's argument words into a Namespace."""

    def __init__(self, label: str) -> None:
        super().__init__(prog=label, add_help=False, allow_abbrev=False, exit_on_error=False)

    def option_words(self) -> list[str]:
        """Every option string, in declaration order (the error's list, and TAB completion)."""
        return [s for a in self._actions for s in a.option_strings]

    def error(self, message: str) -> NoReturn:
        raise HvError(message)

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        try:
            # intermixed: options and positional words in any order (hv-vmcs --exit 1 as hv-vmcs 1 --exit)
            ns, extra = self.parse_known_intermixed_args(list(argv))
        except argparse.ArgumentError as e:
            if e.argument_name and "expected one argument" in e.message:
                raise HvError(f"option {e.argument_name} needs a value") from None
            raise HvError(f"{e.argument_name}: {e.message}" if e.argument_name else e.message) from None
        if extra and not self._actions:
            raise HvError(f"takes no arguments (got {' '.join(extra)!r})")
        if extra:
            word = extra[0]
            what = "option" if word.startswith("-") and not word[1:2].isdigit() else "argument"
            raise HvError(f"unknown {what} {word!r} (options: {', '.join(self.option_words())})")
        return ns
