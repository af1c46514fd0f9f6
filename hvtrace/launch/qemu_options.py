"""The user's QEMU options: ``--cpu-model MODEL[,features]`` and ``--qemu-arg ARG`` (run, capture, tui).

Pure functions (no session imports), unit-tested: :func:`cpu_option` builds the ``-cpu`` value with
what hvtrace's back end needs added, :func:`split_qemu_args` the extra argv. QEMU itself judges the
names: a model or device it does not know ends the run with exit 70 and QEMU's own message.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from hvtrace.exitcodes import ExitCode, LaunchError

#: The CPU model under TCG when the user names none: AMD SVM with nested paging for the SVM back end,
#: 1 GiB pages for the hypervisor's identity map.
DEFAULT_TCG_CPU = "qemu64"
#: CPU features hvtrace adds to any TCG CPU model (unless the model's own list names them already).
TCG_CPU_NEEDS = ("svm", "npt", "pdpe1gb")

_OFF_VALUES = ("off", "false", "no", "0")
_MODEL_RE = re.compile(r"[A-Za-z0-9_.-]+")
_FEATURE_RE = re.compile(r"[+-]?[A-Za-z0-9_.-]+(=[A-Za-z0-9_.-]+)?")


def _feature_key(feature: str) -> tuple[str, bool]:
    """``+svm`` / ``-svm`` / ``svm=off`` -> (``svm``, enabled?); QEMU treats ``_`` and ``-`` alike."""
    name, _, value = feature.partition("=")
    on = not name.startswith("-") and value.lower() not in _OFF_VALUES
    return name.lstrip("+-").replace("_", "-").lower(), on


def cpu_option(model: str | None, accel: str = "tcg") -> str:
    """The ``-cpu`` value for ``--cpu-model MODEL[,features]`` (None: hvtrace's default).

    Under TCG hvtrace adds what the SVM back end needs (:data:`TCG_CPU_NEEDS`) after the user's
    features, leaving out those the user named; a model that turns one of them off is a usage error.
    Under KVM the default is ``host`` and a model is passed as given (the host CPU decides the back
    end). Raises LaunchError(USAGE) on a malformed model; QEMU itself judges the names.
    """
    if model is None:
        model = "host" if accel == "kvm" else DEFAULT_TCG_CPU
    elif not model.strip():
        raise LaunchError(ExitCode.USAGE, "--cpu-model needs a model name (e.g. max or qemu64,+x2apic)")
    name, *features = model.split(",")
    if not _MODEL_RE.fullmatch(name):
        raise LaunchError(ExitCode.USAGE, f"--cpu-model {model!r}: {name!r} is not a CPU model name")
    for f in features:
        if not _FEATURE_RE.fullmatch(f):
            raise LaunchError(
                ExitCode.USAGE, f"--cpu-model {model!r}: {f!r} is not a feature (+name, -name or name=value)"
            )
    if accel == "kvm":
        return model
    named: dict[str, bool] = {}
    for f in features:
        key, on = _feature_key(f)
        named[key] = on
    for need in TCG_CPU_NEEDS:
        if named.get(need) is False:
            raise LaunchError(
                ExitCode.USAGE,
                f"--cpu-model {model!r} turns off {need}, which hvtrace's SVM back end needs under TCG",
            )
    added = [f"+{need}" for need in TCG_CPU_NEEDS if need not in named]
    return ",".join([name, *features, *added])


#: QEMU options hvtrace sets itself and that --qemu-arg may not repeat (which one wins is QEMU's
#: business, and the session's files, ports and exit path depend on them).
RESERVED_QEMU_OPTIONS = {
    "-cpu": "use --cpu-model",
    "-smp": "use --cpus",
    "-m": "use --memory",
    "-kernel": "hvtrace boots its own image",
    "-initrd": "use --guest/--initrd",
    "-append": "use --append/--hv-append",
    "-gdb": "use --gdb",
    "-accel": "use --accel",
    "-machine": "the guest RAM is hvtrace's shared memory backend",
    "-M": "the guest RAM is hvtrace's shared memory backend",
    "-monitor": "stdio is hvtrace's console",
    "-qmp": "hvtrace's QMP socket",
}


def split_qemu_args(values: Sequence[str]) -> tuple[str, ...]:
    """``--qemu-arg`` values -> extra QEMU argv: each value is split like a shell word list
    (``--qemu-arg "-device virtio-rng-pci"`` or ``--qemu-arg=-device --qemu-arg=virtio-rng-pci``).
    Raises LaunchError(USAGE) on bad quoting or an option hvtrace sets itself."""
    out: list[str] = []
    for value in values:
        try:
            words = shlex.split(value)
        except ValueError as e:
            raise LaunchError(ExitCode.USAGE, f"--qemu-arg {value!r}: {e}") from None
        if not words:
            raise LaunchError(ExitCode.USAGE, "--qemu-arg needs a QEMU argument")
        for w in words:
            option = "-" + w.lstrip("-").split("=", 1)[0] if w.startswith("-") else None
            if option in RESERVED_QEMU_OPTIONS:
                why = f"hvtrace sets {option} itself ({RESERVED_QEMU_OPTIONS[option]})"
                raise LaunchError(ExitCode.USAGE, f"--qemu-arg {value!r}: {why}")
        out.extend(words)
    return tuple(out)


def refuse_qemu_options(backend: str | None, cpu_model: str | None, qemu_args: Sequence[str]) -> None:
    """``--cpu-model``/``--qemu-arg`` with ``--backend bochs`` is a usage error (raises LaunchError)."""
    if (cpu_model is not None or qemu_args) and backend == "bochs":
        raise LaunchError(
            ExitCode.USAGE,
            "--cpu-model and --qemu-arg apply to the qemu backend only (Bochs runs hvtrace's VT-x CPU "
            "model, corei7_skylake_x)",
        )
