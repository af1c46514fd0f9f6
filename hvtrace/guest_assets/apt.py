"""apt plumbing: resolve, download and unpack the Debian packages the guest files come from (nothing
is installed into the system: ``apt-get download`` and ``dpkg-deb`` only)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hvtrace.tools import require_tool

from .errors import AssetsUnavailable, GuestAssetError

#: Debian kernel metapackage; it depends on exactly one linux-image-<abi>-amd64 (the real kernel).
KERNEL_METAPACKAGE = "linux-image-amd64"


@dataclass(frozen=True)
class PackageInfo:
    """One Debian package a file was taken from."""

    package: str
    version: str


def is_root() -> bool:
    return os.geteuid() == 0


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(line for line in text.strip().splitlines()[-lines:])


def update_hint() -> str:
    if is_root():
        return "run `apt-get update` and retry"
    return "run `sudo apt-get update` (refreshes the package lists) and retry"


def _run_apt(argv: Sequence[str], *, what: str, cwd: Path | None = None) -> str:
    """Run an apt command; stdout on success, AssetsUnavailable naming ``what`` and the command else."""
    proc = subprocess.run(
        list(argv),
        check=False,
        cwd=cwd,
        env=_apt_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        detail = _tail(proc.stderr or proc.stdout)
        raise AssetsUnavailable(
            f"{what}: `{shlex.join(argv)}` failed (exit status {proc.returncode})"
            + (f":\n{detail}" if detail else "")
        )
    return proc.stdout


def apt_update() -> None:
    """``apt-get update`` (root only: the lists are the system's)."""
    apt_get = require_tool("apt-get", "to fetch the Linux guest packages")
    _run_apt([apt_get, "update", "-q"], what="refreshing the package lists")


def parse_control(text: str) -> dict[str, str]:
    """The first stanza of Debian control-file text (``apt-cache show`` output), keys as written."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            key = ""
            continue
        fields[key] = value.strip()
    return fields


_DEP_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?::\S+)?\s*(?:\((?P<op>[<>=]+)\s*(?P<ver>[^)\s]+)\s*\))?$"
)


def kernel_dependency(depends: str, metapackage: str = KERNEL_METAPACKAGE) -> tuple[str, str | None]:
    """From the metapackage's Depends field: the concrete ``linux-image-*`` package and its pinned
    version (``linux-image-6.1.0-56-amd64 (= 6.1.192-2)`` -> that name, ``6.1.192-2``)."""
    for clause in depends.split(","):
        for alternative in clause.split("|"):
            m = _DEP_RE.match(alternative.strip())
            if m is None:
                continue
            name = m.group("name")
            if name.startswith("linux-image-") and name != metapackage:
                return name, m.group("ver") if m.group("op") == "=" else None
    raise GuestAssetError(
        f"{metapackage} depends on no linux-image-* package (Depends: {depends or 'empty'}); "
        f"see `apt-cache show {metapackage}`"
    )


def resolve_kernel_package(metapackage: str = KERNEL_METAPACKAGE) -> tuple[PackageInfo, PackageInfo]:
    """(metapackage, concrete kernel package) at the candidate version apt would install."""
    apt_cache = require_tool("apt-cache", "to resolve the Debian kernel package")
    argv = [apt_cache, "show", "--no-all-versions", metapackage]
    fields = parse_control(_run_apt(argv, what=f"looking up {metapackage}"))
    if "Version" not in fields:
        raise AssetsUnavailable(f"looking up {metapackage}: `{shlex.join(argv)}` found no candidate version")
    name, version = kernel_dependency(fields.get("Depends", ""), metapackage)
    return PackageInfo(metapackage, fields["Version"]), PackageInfo(name, version or "")


def download(package: str, version: str, dest: Path) -> Path:
    """``apt-get download PACKAGE[=VERSION]`` into ``dest``; the .deb it wrote."""
    apt_get = require_tool("apt-get", "to fetch the Linux guest packages")
    argv = [apt_get, "download", "-q"]
    if is_root():
        # As root apt drops to the _apt user, which cannot write our directory: it warns, then
        # downloads unsandboxed anyway. Say so up front.
        argv += ["-o", "APT::Sandbox::User=root"]
    argv.append(f"{package}={version}" if version else package)
    before = set(dest.glob("*.deb"))
    _run_apt(argv, what=f"downloading {package}", cwd=dest)
    new = sorted(set(dest.glob("*.deb")) - before)
    if len(new) != 1:
        raise GuestAssetError(f"`{shlex.join(argv)}` left {len(new)} new .deb files in {dest}, expected 1")
    return new[0]


def deb_info(deb: Path) -> PackageInfo:
    """Package name and version from a .deb's control file (``dpkg-deb -f``)."""
    dpkg_deb = require_tool("dpkg-deb", "to unpack the Linux guest packages")
    argv = [dpkg_deb, "-f", str(deb), "Package", "Version"]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    fields = parse_control(proc.stdout)
    if proc.returncode != 0 or "Package" not in fields or "Version" not in fields:
        raise GuestAssetError(f"`{shlex.join(argv)}` failed: {_tail(proc.stderr) or proc.stdout!r}")
    return PackageInfo(fields["Package"], fields["Version"])


def extract_members(deb: Path, wanted: Callable[[str], bool], dest: Path) -> list[Path]:
    """Regular files of the .deb's data archive whose path (``boot/vmlinuz-...``) ``wanted`` accepts,
    written flat into ``dest``.

    The archive comes from ``dpkg-deb --fsys-tarfile`` and is streamed: unlike ``dpkg-deb -x`` it does
    not write the kernel package's ~400 MB of modules to disk only to keep one file of it.
    """
    dpkg_deb = require_tool("dpkg-deb", "to unpack the Linux guest packages")
    argv = [dpkg_deb, "--fsys-tarfile", str(deb)]
    out: list[Path] = []
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if not member.isfile() or not wanted(name):
                        continue
                    src = tar.extractfile(member)
                    assert src is not None
                    target = dest / Path(name).name
                    with open(target, "wb") as fh:
                        shutil.copyfileobj(src, fh)
                    target.chmod(0o755 if member.mode & 0o111 else 0o644)
                    out.append(target)
            proc.stdout.read()  # drain the tar's padding so dpkg-deb exits cleanly
        except tarfile.TarError as e:
            proc.kill()
            raise GuestAssetError(f"`{shlex.join(argv)}`: unreadable data archive: {e}") from e
        err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise GuestAssetError(f"`{shlex.join(argv)}` failed (exit status {proc.returncode}): {_tail(err)}")
    return out
