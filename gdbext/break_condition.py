"""``hv-break ... if EXPR``: the condition compiled into the break entry's terms, evaluated by the
hypervisor (hv/core/trace/breaks.c) so that exits that do not match never reach gdb. Pure: unit-tested.

EXPR is up to HV_BREAK_TERMS comparisons joined by ``&&``: ``OPERAND OP NUMBER`` (or ``NUMBER OP
OPERAND``), ``OPERAND & MASK`` (some bit set) or a bare ``OPERAND`` (non-zero). Comparisons are unsigned.
Operands: the guest GPRs as the guest resumes with them (after the handler: CPUID's outputs, RDMSR's
value), ``$`` optional, RSP excluded (not in the exit's register frame); the exit's record fields arg0,
arg1, qual, gpa, rip, cr3 and their per-kind names (leaf, subleaf, msr, port, cr = arg0 / arg1).
Anything else (``||``, parentheses, arithmetic) is refused with one line saying what is possible.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hvtrace import abi
from hvtrace.abi import HvBreak, HvBrkOp, HvBrkOperand

from .model import GPR_NAMES, HvError, parse_int

Term = tuple[int, int, int]  # (operand, op, value)

OPERANDS: dict[str, int] = {n.lower(): i for i, n in enumerate(GPR_NAMES) if n != "RSP"}
OPERANDS.update({o.name.lower(): int(o) for o in HvBrkOperand if o is not HvBrkOperand.COUNT})
OPERANDS.update({"leaf": HvBrkOperand.ARG0, "subleaf": HvBrkOperand.ARG1, "msr": HvBrkOperand.ARG0})
OPERANDS.update({"port": HvBrkOperand.ARG0, "cr": HvBrkOperand.ARG0})
OPS = {"==": HvBrkOp.EQ, "!=": HvBrkOp.NE, "<": HvBrkOp.LT, "<=": HvBrkOp.LE, ">": HvBrkOp.GT}
OPS.update({">=": HvBrkOp.GE, "&": HvBrkOp.TEST})
#: The comparison seen from the other side (``1 == rax`` is ``rax == 1``; ``0x10 < rcx`` is ``rcx > 0x10``).
FLIPPED = {HvBrkOp.LT: HvBrkOp.GT, HvBrkOp.LE: HvBrkOp.GE, HvBrkOp.GT: HvBrkOp.LT, HvBrkOp.GE: HvBrkOp.LE}
SYMBOL = {int(v): k for k, v in OPS.items()}
NAME_OF = {int(HvBrkOperand.ARG0): "arg0", int(HvBrkOperand.ARG1): "arg1"}
NAME_OF.update({v: k for k, v in OPERANDS.items() if v not in NAME_OF})
TOKEN_RE = re.compile(r"\s*(&&|\|\||==|!=|<=|>=|<|>|&|\$?[A-Za-z_]\w*|\d\w*|\S)")
POSSIBLE = (
    f"up to {abi.HV_BREAK_TERMS} terms 'OPERAND OP NUMBER' joined by &&; operands rax..r15 (not rsp), "
    "arg0 arg1 qual gpa rip cr3 (leaf subleaf msr port cr); ops == != < <= > >= & (mask)"
)


def _refuse(text: str, why: str) -> HvError:
    return HvError(f"cannot evaluate 'if {text}' in the hypervisor: {why} (it takes {POSSIBLE})")


def _tokens(text: str) -> list[str]:
    tokens = TOKEN_RE.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):  # pragma: no cover - the pattern takes every char
        raise _refuse(text, "unreadable")
    return tokens


def _operand(word: str) -> int | None:
    return OPERANDS.get(word.lower().removeprefix("$"))


def _number(word: str, text: str) -> int | None:
    if not word[:1].isdigit():
        return None
    value = parse_int(word, "number in the condition")
    if value >= 1 << 64:
        raise _refuse(text, f"{word} does not fit 64 bits")
    return value


def _term(words: list[str], text: str) -> Term:
    shown = " ".join(words)
    if len(words) == 1:
        opd = _operand(words[0])
        if opd is None:
            raise _refuse(text, f"{shown!r} is not an operand")
        return opd, HvBrkOp.NE, 0
    if len(words) != 3 or words[1] not in OPS:
        if "rsp" in (w.lower().removeprefix("$") for w in words):
            raise _refuse(text, "RSP is not in the exit's register frame")
        raise _refuse(text, f"{shown!r} is not 'OPERAND OP NUMBER'")
    left, sym, right = words
    op = OPS[sym]
    lopd, rnum = _operand(left), _number(right, text)
    if lopd is not None and rnum is not None:
        return lopd, op, rnum
    lnum, ropd = _number(left, text), _operand(right)
    if lnum is not None and ropd is not None and op is not HvBrkOp.TEST:
        return ropd, FLIPPED.get(op, op), lnum
    if "rsp" in (left.lower().removeprefix("$"), right.lower().removeprefix("$")):
        raise _refuse(text, "RSP is not in the exit's register frame")
    raise _refuse(text, f"{shown!r} compares no operand with a number")


def compile_condition(words: Sequence[str]) -> list[Term]:
    """The words after ``if`` -> the entry's terms (operand, op, value), or one HvError line."""
    text = " ".join(words)
    tokens = _tokens(text)
    if not tokens:
        raise HvError("'if' needs a condition, e.g. hv-break cpuid if leaf == 1 && rbx != 0")
    if "||" in tokens:
        raise _refuse(text, "'||' (break twice instead: one entry per alternative)")
    terms: list[list[str]] = [[]]
    for t in tokens:
        if t == "&&":
            terms.append([])
        else:
            terms[-1].append(t)
    if len(terms) > abi.HV_BREAK_TERMS:
        raise _refuse(text, f"{len(terms)} terms")
    return [_term(t, text) for t in terms]


def set_condition(b: HvBreak, terms: Sequence[Term]) -> None:
    b.nterms = len(terms)
    for i, (operand, op, value) in enumerate(terms):
        b.term[i].operand, b.term[i].op, b.term[i].value = operand, op, value


def describe_condition(b: HvBreak) -> str:
    """``rax == 0x1 && leaf >= 0x10`` from the entry's terms ('' without a condition)."""
    parts = []
    for t in b.term[: min(b.nterms, abi.HV_BREAK_TERMS)]:
        name = NAME_OF.get(t.operand, f"operand{t.operand}")
        parts.append(f"{name} {SYMBOL.get(t.op, '?')} {t.value:#x}")
    return " && ".join(parts)
