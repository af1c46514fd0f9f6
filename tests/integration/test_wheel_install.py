"""`pip install` of a wheel built from this checkout gives a working `hvtrace` anywhere: the wheel carries
the built image, the guests, mkiso.sh and gdbext. Installed into a fresh venv outside the checkout
(--no-deps; its dependencies come from this venv through a .pth file, so no download is needed), it
runs `hvtrace run --cpus 2` and `hvtrace gdb --core` from another directory."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from hvtrace import paths
from tests.integration.conftest import dump_storm_core

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ of a fresh venv with only the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    # No build isolation: this venv's setuptools and wheel (the test extra) build it, no index is needed.
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    r = run([*build, str(paths.repo_root()), "-w", str(tmp / "dist")], tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp / "dist").glob("hvtrace-*.whl")
    venv = tmp / "venv"
    r = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    assert r.returncode == 0, r.stderr
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    r = run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp
    ).stdout.strip()
    (Path(site) / "hvtrace-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_the_installed_package_is_the_wheel_with_its_image(installed: Path, tmp_path: Path) -> None:
    r = run(
        [str(installed / "python"), "-c", "import hvtrace.paths as p; print(p.installed(), p.image_path())"],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    flag, image = r.stdout.split()
    assert flag == "True"
    assert Path(image).is_relative_to(installed.parent)
    assert Path(image).is_file()


def test_installed_hvtrace_runs_from_another_directory(installed: Path, tmp_path: Path) -> None:
    r = run([str(installed / "hvtrace"), "run", "--cpus", "2"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HVTRACE STATUS code=0 result=pass" in r.stdout
    assert "2 CPUs online" in r.stdout


def test_installed_hvtrace_errors_are_one_line(installed: Path, tmp_path: Path) -> None:
    r = run([str(installed / "hvtrace"), "run", "--guest", "missing.elf"], tmp_path)
    assert r.returncode == 66, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_installed_hvtrace_gdb_reads_a_core(installed: Path, tmp_path: Path) -> None:
    core = dump_storm_core(tmp_path / "guest.core")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run(
        [str(installed / "hvtrace"), "gdb", "--core", str(core), "--batch", "--ex", "hv-cpus"], elsewhere, 300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^CPU 0 SVM launched ring \d+/\d+ exits \d+", r.stdout, re.MULTILINE), (
        r.stdout + r.stderr
    )
