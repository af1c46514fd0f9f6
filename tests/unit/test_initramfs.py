"""The guest initramfs: a gzip-compressed newc cpio written in pure Python, read back here.

The reader below is written from the format description in the Linux kernel's
Documentation/driver-api/early-userspace/buffer-format.rst, independently of the writer:

    cpio_file := ALGN(4) + cpio_header + filename + "\\0" + ALGN(4) + data
    cpio_header: c_magic "070701", then 13 fields of 8 ASCII hex digits: c_ino, c_mode, c_uid, c_gid,
    c_nlink, c_mtime, c_filesize, c_maj, c_min, c_rmaj, c_rmin, c_namesize (including the NUL), c_chksum
    The archive ends with the entry named "TRAILER!!!".
"""

from __future__ import annotations

import gzip
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from hvtrace import guest_assets as ga
from hvtrace.launch.qemu import qemu_argv

FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "maj", "min", "rmaj", "rmin",
          "namesize", "chksum")  # fmt: skip
FAKE_BUSYBOX = b"\x7fELF" + bytes(range(256)) * 7 + b"xyz"  # an odd size: exercises the data padding


@dataclass
class Member:
    name: str
    offset: int
    fields: dict[str, int]
    data: bytes


def read_newc(blob: bytes) -> list[Member]:
    """Every member up to and including the trailer; asserts the 4-byte alignment rules."""
    members: list[Member] = []
    pos = 0
    while True:
        assert pos % 4 == 0, f"member at {pos} is not 4-byte aligned"
        assert blob[pos : pos + 6] == b"070701", f"bad magic at {pos}: {blob[pos : pos + 6]!r}"
        raw = blob[pos + 6 : pos + 110]
        fields = {name: int(raw[i * 8 : i * 8 + 8], 16) for i, name in enumerate(FIELDS)}
        name_end = pos + 110 + fields["namesize"]
        assert blob[name_end - 1] == 0, "name is not NUL-terminated"
        name = blob[pos + 110 : name_end - 1].decode()
        data_start = name_end + (-name_end % 4)
        assert blob[name_end:data_start] == b"\0" * (data_start - name_end)
        data = blob[data_start : data_start + fields["filesize"]]
        members.append(Member(name, pos, fields, data))
        pos = data_start + fields["filesize"]
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert blob[pos:] == b"\0" * (len(blob) - pos)
            return members


@pytest.fixture(scope="module")
def members() -> list[Member]:
    return read_newc(gzip.decompress(ga.initramfs_bytes(FAKE_BUSYBOX)))


def by_name(members: list[Member]) -> dict[str, Member]:
    return {m.name: m for m in members}


def test_layout_names_and_order(members: list[Member]) -> None:
    names = [m.name for m in members]
    assert names[-1] == "TRAILER!!!"
    expected = {"bin", "bin/busybox", "dev", "dev/console", "proc", "sys", "init"}
    expected |= {f"bin/{a}" for a in ga.APPLETS}
    assert set(names[:-1]) == expected
    assert len(names) == len(set(names))
    # Parents come before their children (the kernel creates entries in order).
    for i, name in enumerate(names[:-1]):
        if "/" in name:
            assert name.rsplit("/", 1)[0] in names[:i], name
    for applet in ("sh", "mount", "cat", "nproc", "echo", "poweroff"):
        assert f"bin/{applet}" in names


def test_modes_and_contents(members: list[Member]) -> None:
    m = by_name(members)
    for d in ("bin", "dev", "proc", "sys"):
        assert stat.S_ISDIR(m[d].fields["mode"]), d
        assert stat.S_IMODE(m[d].fields["mode"]) == 0o755
    busybox = m["bin/busybox"]
    assert stat.S_ISREG(busybox.fields["mode"])
    assert stat.S_IMODE(busybox.fields["mode"]) == 0o755
    assert busybox.data == FAKE_BUSYBOX
    for applet in ga.APPLETS:
        link = m[f"bin/{applet}"]
        assert stat.S_ISLNK(link.fields["mode"]), applet
        assert link.data == b"busybox"
    console = m["dev/console"]
    assert console.fields["mode"] == 0o020600  # S_IFCHR | 0600
    assert (console.fields["rmaj"], console.fields["rmin"]) == (5, 1)
    assert console.fields["filesize"] == 0
    init = m["init"]
    assert init.fields["mode"] == stat.S_IFREG | 0o755
    assert init.data.decode() == ga.INIT_SCRIPT


def test_header_fields(members: list[Member]) -> None:
    inos = [mb.fields["ino"] for mb in members[:-1]]
    assert len(set(inos)) == len(inos), "inode numbers must be unique (the kernel links equal ones)"
    for mb in members[:-1]:
        f = mb.fields
        assert (f["uid"], f["gid"], f["mtime"], f["chksum"]) == (0, 0, 0, 0), mb.name
        assert f["namesize"] == len(mb.name) + 1
        assert f["nlink"] == (2 if stat.S_ISDIR(f["mode"]) else 1)
    trailer = members[-1].fields
    assert trailer["filesize"] == 0
    assert trailer["mode"] == 0


def test_init_script() -> None:
    script = ga.INIT_SCRIPT
    assert script.startswith("#!/bin/sh\n")
    assert "mount -t proc proc /proc" in script
    assert "mount -t sysfs sysfs /sys" in script
    assert f'echo "{ga.MARKER} nproc=$(nproc) cpus_online=$(cat /sys/devices/system/cpu/online)"' in script
    assert script.rstrip().endswith("poweroff -f")
    # Every command the script runs is an applet the archive links.
    for cmd in ("mount", "nproc", "cat", "echo", "poweroff", "sh"):
        assert cmd in ga.APPLETS
    sh = shutil.which("sh")
    assert sh is not None
    r = subprocess.run([sh, "-n"], input=script, text=True, capture_output=True, check=False)
    assert r.returncode == 0, r.stderr


def test_member_encoding_is_exact() -> None:
    entry = ga.CpioEntry("ab", stat.S_IFREG | 0o644, b"hello")
    raw = ga.newc_member(entry, ino=7)
    header = (
        b"070701" + b"00000007" + b"000081A4" + b"00000000" * 2 + b"00000001" + b"00000000"
        b"00000005" + b"00000000" * 4 + b"00000003" + b"00000000"
    )
    assert raw == header + b"ab\0" + b"\0\0\0" + b"hello" + b"\0\0\0"  # 110+3 -> 116; 5 -> 8
    assert len(raw) % 4 == 0


def test_archive_is_deterministic_gzip() -> None:
    a = ga.initramfs_bytes(FAKE_BUSYBOX)
    assert a == ga.initramfs_bytes(FAKE_BUSYBOX)
    assert a[:2] == b"\x1f\x8b"
    assert a[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_build_initramfs_writes_only_on_change(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(FAKE_BUSYBOX)
    out = tmp_path / "initramfs.cpio.gz"
    assert ga.build_initramfs(busybox, out) == out
    first = out.stat().st_mtime_ns
    ga.build_initramfs(busybox, out)
    assert out.stat().st_mtime_ns == first
    busybox.write_bytes(FAKE_BUSYBOX + b"!")
    ga.build_initramfs(busybox, out)
    files = by_name(read_newc(gzip.decompress(out.read_bytes())))
    assert files["bin/busybox"].data == FAKE_BUSYBOX + b"!"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busybox", "initramfs.cpio.gz"]


def test_parse_marker() -> None:
    got = ga.parse_marker("\x1b[0mHVTRACE-LINUX-MARKER nproc=4 cpus_online=0-3\r")
    assert got == ga.Marker(4, "0-3")
    assert ga.parse_marker("HVTRACE-LINUX-MARKER nproc=$(nproc)") is None
    assert ga.parse_marker("Run /init as init process") is None


def test_bare_qemu_argv_matches_the_hypervisor_machine() -> None:
    argv = ga.bare_qemu_argv(
        kernel=Path("/k/vmlinuz"), initrd=Path("/k/initrd"), cpus=2, memory_mb=512, append="x=1"
    )

    def opt(args: list[str], flag: str) -> str:
        return args[args.index(flag) + 1]

    hv = qemu_argv(
        elf=Path("/e"), cmdline="", cpus=2, memory_mb=512, ram_path=Path("/r"), gdb_port=1,
        qmp_socket=Path("/q"),
    )  # fmt: skip
    assert opt(argv, "-cpu") == opt(hv, "-cpu")
    assert opt(argv, "-accel") == "tcg"
    assert opt(argv, "-machine") == "q35"
    assert opt(argv, "-smp") == "2"
    assert opt(argv, "-m") == "512M"
    assert opt(argv, "-kernel") == "/k/vmlinuz"
    assert opt(argv, "-initrd") == "/k/initrd"
    assert opt(argv, "-append") == "console=ttyS0 panic=-1 quiet x=1"
    # COM1 is the guest's console on both (the hypervisor's own COM2 is hidden from its guest)
    assert opt(argv, "-serial") == "chardev:console"
    assert opt(hv, "-serial") != "none"
    assert "-no-reboot" in argv
