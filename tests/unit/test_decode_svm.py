"""The VMCB layout, SVM exit codes and EXITINFO decoders.

Offsets from AMD APM Vol. 2 Appendix B, Table B-1 (control area) and Table B-2 (state-save area,
listed there from 0x400), and checked against the _Static_asserts of hv/include/hv/svm/vmcb.h. Exit
codes from Appendix C, Table C-1, and against hv/svm/names.c. EXITINFO layouts: 15.10.2 (IOIO),
15.11 (MSR), 15.25.6 (#NPF), 15.20 (EVENTINJ / EXITINTINFO), 15.33 (decode assists).
"""

from __future__ import annotations

import re

import pytest

from hvtrace import paths
from hvtrace.decode import svm_controls as ctl
from hvtrace.decode import svm_exits as ex
from hvtrace.decode import svm_vmcb as layout
from hvtrace.decode import vmcb_view as view


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("INTERCEPT_CR_READ", 0x000),
        ("INTERCEPT_EXCEPTIONS", 0x008),
        ("INTERCEPT_MISC1", 0x00C),
        ("INTERCEPT_MISC2", 0x010),
        ("IOPM_BASE_PA", 0x040),
        ("MSRPM_BASE_PA", 0x048),
        ("TSC_OFFSET", 0x050),
        ("GUEST_ASID", 0x058),
        ("TLB_CONTROL", 0x05C),
        ("EXITCODE", 0x070),
        ("EXITINFO1", 0x078),
        ("EXITINFO2", 0x080),
        ("EXITINTINFO", 0x088),
        ("NP_CONTROL", 0x090),
        ("EVENTINJ", 0x0A8),
        ("N_CR3", 0x0B0),
        ("VMCB_CLEAN", 0x0C0),
        ("NRIP", 0x0C8),
        ("INSN_BYTES", 0x0D1),
        ("CS_SELECTOR", 0x410),
        ("TR_BASE", 0x498),
        ("CPL", 0x4CB),
        ("EFER", 0x4D0),
        ("CR4", 0x548),
        ("RIP", 0x578),
        ("RSP", 0x5D8),
        ("RAX", 0x5F8),
        ("KERNEL_GS_BASE", 0x620),
        ("CR2", 0x640),
        ("G_PAT", 0x668),
        ("DBGCTL", 0x670),
    ],
)
def test_vmcb_offsets(name: str, offset: int) -> None:
    assert layout.offset_of(name) == offset


def test_offsets_agree_with_the_hypervisor_static_asserts() -> None:
    """Every VMCB_OFF(area.field) == 0x... in vmcb.h names a field at the same offset here."""
    text = (paths.hv_dir() / "include" / "hv" / "svm" / "vmcb.h").read_text()
    aliases = {
        "intercept_exceptions": "INTERCEPT_EXCEPTIONS",
        "iopm_base": "IOPM_BASE_PA",
        "msrpm_base": "MSRPM_BASE_PA",
        "np_enable": "NP_CONTROL",
        "next_rip": "NRIP",
        "event_inj": "EVENTINJ",
        "es": "ES_SELECTOR",
        "cs": "CS_SELECTOR",
        "ss": "SS_SELECTOR",
        "ds": "DS_SELECTOR",
        "fs": "FS_SELECTOR",
        "gs": "GS_SELECTOR",
        "gdtr": "GDTR_SELECTOR",
        "ldtr": "LDTR_SELECTOR",
        "idtr": "IDTR_SELECTOR",
        "tr": "TR_SELECTOR",
    }
    pairs = re.findall(r"VMCB_OFF\((?:control|save)\.(\w+)\) == (0x[0-9a-f]+)", text)
    assert len(pairs) > 30
    for field, off in pairs:
        name = aliases.get(field, field.upper())
        assert layout.offset_of(name) == int(off, 16), field


def test_exit_codes_table_c1() -> None:
    assert ex.exit_code_name(0x72) == "CPUID"
    assert ex.exit_code_name(0x81) == "VMMCALL"
    assert ex.exit_code_name(0x400) == "NPF"
    assert ex.exit_code_name(-1) == "VMEXIT_INVALID"
    assert ex.exit_code_name(0xFFFF_FFFF_FFFF_FFFF) == "VMEXIT_INVALID"
    assert ex.exit_code_name(0x03) == "CR3_READ"
    assert ex.exit_code_name(0x13) == "CR3_WRITE"
    assert ex.exit_code_name(0x4E) == "EXCP_PF"
    assert ex.exit_code_name(0x7B) == "IOIO"
    assert ex.exit_code_name(0x7C) == "MSR"
    assert ex.exit_code_name(0x7F) == "SHUTDOWN"
    assert ex.exit_code_name(0x8D) == "XSETBV"
    assert ex.exit_code_name(0x93) == "CR3_WRITE_TRAP"
    assert ex.exit_code_name(0x999) == "UNKNOWN"
    assert ex.exit_code_from_record(0xFFFF) == ex.VMEXIT_INVALID
    assert ex.exit_code_from_record(0xFFFF_FFFF) == ex.VMEXIT_INVALID  # hv_snapshot.exit_reason is u32
    assert ex.exit_code_from_record(0x400) == 0x400
    assert ex.NAME_TO_EXIT_CODE["VMRUN"] == 0x80


def test_exit_names_agree_with_names_c() -> None:
    """hv/svm/names.c misc_names and excp_names give the same names (it folds CRn_WRITE_TRAP)."""
    text = (paths.hv_dir() / "svm" / "names.c").read_text()
    misc = re.findall(r"\[0x([0-9a-f]+) - 0x60\] = \"(\w+)\"", text)
    assert len(misc) > 40
    for code, name in misc:
        assert ex.exit_code_name(int(code, 16)) == name, code
    excp = text[text.index("excp_names[32]") : text.index("};", text.index("excp_names[32]"))]
    for vector, name in enumerate(re.findall(r"\"(EXCP_\w+)\"", excp)):
        assert ex.exit_code_name(0x40 + vector) == name


def test_intercept_bits() -> None:
    """Table B-1 vectors 3/4 (offsets 0x0C / 0x10) against hv/include/hv/svm/svm.h."""
    text = (paths.hv_dir() / "include" / "hv" / "svm" / "svm.h").read_text()
    defs = re.findall(r"#define SVM_INTERCEPT([12])_(\w+)\s+\(1u << (\d+)\)", text)
    assert len(defs) > 10
    for word, name, bit in defs:
        table = ctl.INTERCEPT_MISC1 if word == "1" else ctl.INTERCEPT_MISC2
        assert table[int(bit)] == {"IOIO": "IOIO_PROT"}.get(name, name)
    assert ctl.INTERCEPT_MISC1[5] == "CR0_SEL_WRITE"
    assert ctl.INTERCEPT_MISC2[16 + 3] == "CR3_WRITE_TRAP"


def test_ioio_exitinfo1_15_10_2() -> None:
    """IN AL, 0x60: TYPE=1 (bit 0), SZ8 (bit 4), A64 (bit 9), port in 31:16."""
    io = ex.decode_ioio(0x0060_0000 | 1 << 9 | 1 << 4 | 1)
    assert (io.is_in, io.size, io.address_size, io.port, io.string, io.rep) == (
        True,
        1,
        64,
        0x60,
        False,
        False,
    )
    rep = ex.decode_ioio(0x03F8_0000 | 1 << 8 | 1 << 6 | 1 << 3 | 1 << 2 | 3 << 10)
    assert rep.describe() == "REP OUTS port 0x03f8, 4 bytes"
    assert rep.segment == 3
    assert ex.describe_exitinfo(0x7B, 0x0060_0211, 0x1234) == ["IN port 0x0060, 1 byte", "next RIP 0x1234"]


def test_msr_cr_and_exception_exitinfo() -> None:
    assert ex.describe_exitinfo(0x7C, 0, 0) == ["RDMSR"]
    assert ex.describe_exitinfo(0x7C, 1, 0) == ["WRMSR"]
    assert ex.describe_exitinfo(0x13, 1 << 63 | 10, 0) == ["MOV CR3, R10"]  # 15.33 decode assists
    assert ex.describe_exitinfo(0x03, 1 << 63 | 0, 0) == ["MOV RAX, CR3"]
    assert ex.describe_exitinfo(0x4E, 0x6, 0xDEAD_B000) == ["#PF at 0xdeadb000, error code 0x6 (W U)"]
    assert ex.describe_exitinfo(0x4D, 0x10, 0) == ["#GP error code 0x10"]


def test_npf_exitinfo_15_25_6() -> None:
    """A write to a present page on the final translation: P (0), RW (1), US (2), bit 32."""
    npf = ex.decode_npf(1 << 32 | 0x7, 0xFEE0_0000)
    assert (npf.present, npf.write, npf.user, npf.final_translation, npf.table_walk) == (
        True,
        True,
        True,
        True,
        False,
    )
    assert npf.describe() == "write at GPA 0xfee00000, protection, final translation [P RW US FINAL_GPA]"
    walk = ex.decode_npf(1 << 33 | 0x4, 0x3000)
    assert walk.table_walk
    assert "not present, guest page-table walk" in walk.describe()
    assert ex.decode_npf(0x10, 0).fetch


def test_eventinj_15_20() -> None:
    """#GP exception with error code 0: vector 13, TYPE 3, EV (11), V (31)."""
    e = ex.decode_event(1 << 31 | 1 << 11 | 3 << 8 | 13)
    assert (e.vector, e.type, e.error_valid, e.valid, e.error_code) == (13, 3, True, True, 0)
    assert e.describe() == "exception #GP, error code 0x0"
    assert ex.decode_event(0x8000_0000 | 0x20 | 0x5_0000_0000).describe() == "external interrupt vector 0x20"
    assert ex.decode_event(0).describe() == "not valid"


def _vmcb() -> bytes:
    page = bytearray(4096)

    def put(name: str, value: int) -> None:
        f = layout.BY_NAME[name]
        page[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")

    put("INTERCEPT_MISC1", 1 << 18 | 1 << 28 | 1 << 31)  # CPUID, MSR_PROT, SHUTDOWN
    put("INTERCEPT_MISC2", 1 << 0 | 1 << 1)  # VMRUN, VMMCALL
    put("MSRPM_BASE_PA", 0x7000)
    put("IOPM_BASE_PA", 0x9000)
    put("GUEST_ASID", 1)
    put("NP_CONTROL", 1)
    put("N_CR3", 0x12_3000)
    put("EXITCODE", 0x72)
    put("RIP", 0xFFF0)
    put("RAX", 0x4000_0000)
    put("CS_ATTRIB", 0x29B)  # L=1 (bit 9), P, DPL 0, S, type 0xB
    put("CR0", 0x8000_0011)
    put("G_PAT", 0x0007_0406_0007_0406)
    return bytes(page)


def test_view_of_raw_bytes_and_of_snapshot_pairs_agree() -> None:
    raw = _vmcb()
    pairs = [(off, int.from_bytes(raw[off : off + 8], "little")) for off in range(0, 4096, 8)]
    assert view.vmcb_view(raw) == view.vmcb_view(pairs)
    text = "\n".join(view.vmcb_view(raw))
    assert "EXITCODE" in text
    assert "CPUID" in text
    assert "bit 28  MSR_PROT" in text
    assert "N_CR3" in text
    assert "type=0xb S=1 DPL=0 P=1 AVL=0 L=1 D/B=0 G=0" in text
    assert "IOPM_BASE_PA" not in text  # meaningful only with the IOIO_PROT intercept
    assert "IOPM_BASE_PA" in "\n".join(view.vmcb_view(raw, all_fields=True))
    assert "\x1b[" not in text
    assert "\x1b[" in "\n".join(view.vmcb_view(raw, colourise=True))


def test_view_areas_and_partial_snapshots() -> None:
    rows = view.build_rows([(0x070, 0x400), (0x078, 1 << 32 | 6), (0x080, 0xB8000), (0x578, 0x1000)])
    names = [r.name for r in rows]
    assert names == ["RIP", "EXITCODE", "EXITINFO1", "EXITINFO2"]
    assert rows[2].details == ["write at GPA 0xb8000, not present, final translation [RW US FINAL_GPA]"]
    exit_only = view.build_rows(_vmcb(), areas=["exit"])
    assert {r.area for r in exit_only} == {"exit"}
    with pytest.raises(ValueError, match="unknown VMCB area"):
        view.build_rows(_vmcb(), areas=["cpu"])
    with pytest.raises(ValueError, match="not an aligned qword"):
        layout.Vmcb.from_pairs([(0x71, 0)])
