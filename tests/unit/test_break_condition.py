"""hv-break's `if EXPR`: what compiles into the hypervisor's condition terms and what is refused."""

from __future__ import annotations

import pytest

from gdbext import break_args
from gdbext.break_condition import compile_condition, describe_condition
from gdbext.model import HvError, kinds_mask
from hvtrace import abi
from hvtrace.abi import HvBrkOp, HvBrkOperand

SVM = 2


def test_terms_name_gprs_in_x86_order_and_record_fields() -> None:
    assert compile_condition(["rax", "==", "1", "&&", "rcx", ">=", "0x10"]) == [
        (0, HvBrkOp.EQ, 1),
        (1, HvBrkOp.GE, 16),
    ]
    # numbers on the left are flipped; $ and the per-kind names of arg0 / arg1 are accepted
    assert compile_condition(["0x10<leaf&&$r15&4", "&&", "subleaf"]) == [
        (HvBrkOperand.ARG0, HvBrkOp.GT, 16),
        (15, HvBrkOp.TEST, 4),
        (HvBrkOperand.ARG1, HvBrkOp.NE, 0),
    ]


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("rax == 1 || rcx == 2", "'||'"),
        ("rsp == 0", "RSP is not in the exit's register frame"),
        ("(rax == 1)", "is not 'OPERAND OP NUMBER'"),
        ("rax + 1 == 2", "is not 'OPERAND OP NUMBER'"),
        ("rax == rbx", "compares no operand with a number"),
        ("rax == 0x10000000000000000", "does not fit 64 bits"),
        ("rax && rbx && rcx && rdx && rsi", "5 terms"),
    ],
)
def test_what_the_hypervisor_cannot_evaluate_is_refused_in_one_line(expr: str, why: str) -> None:
    with pytest.raises(HvError) as e:
        compile_condition(expr.split())
    assert why in str(e.value)
    assert str(e.value).startswith(f"cannot evaluate 'if {expr}' in the hypervisor")
    assert "\n" not in str(e.value)


def test_entry_carries_condition_ignore_and_trace() -> None:
    b = break_args.build_break(SVM, 2, ["cpuid", "--leaf", "1", "--ignore", "3", "if", "rbx", "!=", "7"])
    assert (b.nterms, b.term[0].operand, b.term[0].op, b.term[0].value) == (1, 3, HvBrkOp.NE, 7)
    assert b.ignore == 3
    assert not b.flags & abi.HV_BRK_TRACE
    assert break_args.describe(SVM, b) == "cpuid arg0=0x1 ignore=3 if rbx != 0x7"
    t = break_args.build_break(SVM, 2, ["any", "--trace", "--cpu", "1"])
    assert t.flags & abi.HV_BRK_TRACE
    assert (t.nterms, describe_condition(t)) == (0, "")
    assert break_args.describe(SVM, t) == "trace any cpu=1"
    with pytest.raises(HvError, match="'if' needs a condition"):
        break_args.build_break(SVM, 2, ["cpuid", "if"])
    with pytest.raises(HvError, match="a condition follows 'if'"):
        break_args.build_break(SVM, 2, ["cpuid", "rax", "==", "1"])


def test_kinds_mask_lets_the_hypervisor_reject_other_kinds_first() -> None:
    cpuid = break_args.build_break(SVM, 2, ["cpuid"])
    msr = break_args.build_break(SVM, 2, ["msr_write", "--msr", "0x10"])
    assert kinds_mask([cpuid, msr]) == (1 << cpuid.kind) | (1 << msr.kind)
    native = break_args.build_break(SVM, 2, ["npf"])  # a native reason names no kind: every exit is looked at
    assert kinds_mask([cpuid, native]) == 0
    msr.enabled = 0
    assert kinds_mask([cpuid, msr]) == 1 << cpuid.kind
