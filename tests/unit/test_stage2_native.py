"""Host-side C tests of the stage-2 identity map, the MTRR logic and the EPT/NPT encoders.

Builds tests/native (the hypervisor's own sources under the host gcc with ASan/UBSan) into a temporary
directory, runs it and checks its summary line. See tests/native/test_stage2.c for the cases.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[1] / "native"


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make")
def test_stage2_native(tmp_path: Path) -> None:
    build = subprocess.run(
        ["make", "-C", str(NATIVE), f"O={tmp_path}"], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    run = subprocess.run(
        [str(tmp_path / "test_stage2")], capture_output=True, text=True, check=False, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"^(\d+) checks passed$", run.stdout, re.MULTILINE)
    assert passed is not None, run.stdout
    assert int(passed.group(1)) > 1000
