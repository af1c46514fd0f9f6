"""abi.h (preprocessed by the host compiler) and hvtrace/abi.py must define exactly the same HV_* values."""

from __future__ import annotations

import ast
import ctypes
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hvtrace import abi, paths

DEFINE_RE = re.compile(r"^#define\s+(HV_\w+)\s*(.*)$")
INT_SUFFIX_RE = re.compile(r"(?<=[0-9a-fA-F])[uUlL]+\b")
SAFE_EXPR_RE = re.compile(r"^[0-9a-fA-FxX()<>|&+\-*~ ]+$")


def header_defines() -> dict[str, int | str]:
    """Every value-carrying ``#define HV_*`` of abi.h, via ``gcc -E -dM`` (include guards skipped)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc is not None, "a host C compiler (gcc) is needed: apt-get install build-essential"
    out = subprocess.run(
        [cc, "-E", "-dM", "-x", "c", str(paths.abi_header())],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, int | str] = {}
    for line in out.splitlines():
        m = DEFINE_RE.match(line)
        if m is None:
            continue
        name, value = m.group(1), m.group(2).strip()
        if not value:  # include guard such as HV_ABI_H
            continue
        found[name] = parse_c_value(value)
    return found


def parse_c_value(value: str) -> int | str:
    """A C string literal or integer constant expression (suffixes, shifts, ors) as Python."""
    if value.startswith('"'):
        parsed = ast.literal_eval(value)
        assert isinstance(parsed, str)
        return parsed
    suffixes = [m.group(0).lower() for m in INT_SUFFIX_RE.finditer(value)]
    expr = INT_SUFFIX_RE.sub("", value)
    assert SAFE_EXPR_RE.match(expr), f"unsupported C expression {value!r}"
    result = eval(expr, {"__builtins__": {}})  # only digits and operators (checked above)
    assert isinstance(result, int)
    unsigned = [sfx for sfx in suffixes if "u" in sfx]
    if unsigned:
        # An unsigned operand makes the expression unsigned: wrap as C does (LP64 x86-64 host).
        bits = 64 if any("l" in sfx for sfx in unsigned) else 32
        result &= (1 << bits) - 1
    return result


def test_parse_c_value() -> None:
    assert parse_c_value("0xf4") == 0xF4
    assert parse_c_value("(1u << 3)") == 8
    assert parse_c_value('"HVTRACE STATUS"') == "HVTRACE STATUS"
    assert parse_c_value("(~0ull)") == 2**64 - 1
    assert parse_c_value("(~0u)") == 2**32 - 1
    assert parse_c_value('"ab\\0\\0"') == "ab\0\0"


def test_header_is_found_and_has_defines() -> None:
    defines = header_defines()
    assert "HV_ABI_VERSION" in defines
    assert len(defines) >= 10


def test_every_header_define_is_mirrored() -> None:
    mirror = abi.mirror_defines()
    missing = sorted(set(header_defines()) - set(mirror))
    assert not missing, f"abi.h defines not mirrored in hvtrace/abi.py: {missing}"


def test_every_mirror_value_is_in_the_header() -> None:
    header = header_defines()
    extra = sorted(set(abi.mirror_defines()) - set(header))
    assert not extra, f"hvtrace/abi.py has values abi.h does not define: {extra}"


@pytest.mark.parametrize("name", sorted(abi.mirror_defines()))
def test_values_match(name: str) -> None:
    assert header_defines().get(name) == abi.mirror_defines()[name]


def test_status_codes_fit_the_passthrough_range() -> None:
    assert all(0 <= s <= abi.HvStatus.MAX for s in abi.HvStatus)
    assert int(abi.HvStatus.MAX) == 63


def c_layout() -> dict[str, dict[str, tuple[int, int]]]:
    """Offsets and sizes of every mirrored struct member, as the host compiler lays out abi.h."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc is not None
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        f'#include "{paths.abi_header()}"',
        "int main(void) {",
    ]
    for cname, struct in abi.ABI_STRUCTS.items():
        lines.append(f'printf("{cname} . 0 %zu\\n", sizeof(struct {cname}));')
        for fname, *_ in struct._fields_:
            lines.append(
                f'printf("{cname} {fname} %zu %zu\\n", offsetof(struct {cname}, {fname}),'
                f" sizeof(((struct {cname} *)0)->{fname}));"
            )
    lines += ["return 0; }"]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp, "layout.c"), Path(tmp, "layout")
        src.write_text("\n".join(lines))
        subprocess.run([cc, "-Wall", "-Werror", "-o", str(exe), str(src)], check=True, capture_output=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    layout: dict[str, dict[str, tuple[int, int]]] = {}
    for line in out.splitlines():
        cname, fname, a, b = line.split()
        layout.setdefault(cname, {})[fname] = (int(a), int(b))
    return layout


def test_struct_layouts_match_the_header() -> None:
    layout = c_layout()
    for cname, struct in abi.ABI_STRUCTS.items():
        assert layout[cname]["."][1] == ctypes.sizeof(struct), cname
        for fname, *_ in struct._fields_:
            member = getattr(struct, fname)
            assert layout[cname][fname] == (member.offset, member.size), f"{cname}.{fname}"
