"""setuptools hook: a wheel carries the built hypervisor (pyproject.toml holds everything else).

A non-editable build (``pip install .``, ``pip wheel .``, ``pipx install .``) runs ``make -C hv`` and
copies the image, the test guests, the GRUB ISO script and the ABI header into ``hvtrace/data/``
(:data:`hvtrace.paths.DATA_DIR`), so an installed hvtrace needs no checkout. An editable install
(``pip install -e .``) copies nothing: it runs from the checkout and builds from the sources there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithImage(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        subprocess.run(["make", "-s", "-C", str(ROOT / "hv")], check=True)
        data = Path(self.build_lib) / "hvtrace" / "data"
        (data / "guests").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "hv" / "build" / "hvtrace.elf", data / "hvtrace.elf")
        for guest in sorted((ROOT / "hv" / "build" / "guests").glob("*.elf")):
            shutil.copy2(guest, data / "guests" / guest.name)
        shutil.copy2(ROOT / "boot" / "mkiso.sh", data / "mkiso.sh")
        shutil.copy2(ROOT / "hv" / "include" / "hv" / "abi.h", data / "abi.h")


setup(cmdclass={"build_py": BuildPyWithImage})
