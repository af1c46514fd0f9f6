"""Register the hv command family in gdb: ``hv`` (prefix), ``hv-*`` and ``hv *``, ``set hv color``."""

from __future__ import annotations

import gdb

from . import cmd_break, command, context, mi_commands
from .cmd_break import HvBreakCmd, HvTracePointCmd
from .cmd_cpus import HvCpus
from .cmd_ept import HvEpt
from .cmd_exits import HvExits
from .cmd_guest import HvGuest
from .cmd_symbols import HvSymbols
from .cmd_vmcs import HvVmcs
from .command import HvCommand
from .context import HvContext

COMMANDS: tuple[type[HvCommand], ...] = (
    HvCpus,
    HvExits,
    HvVmcs,
    HvEpt,
    HvBreakCmd,
    HvTracePointCmd,
    HvGuest,
    HvSymbols,
    HvContext,
)


class HvPrefix(gdb.Command):  # type: ignore[misc]
    """hvtrace: inspect the tracing hypervisor (VMCS/VMCB, EPT/NPT, exit rings, exit breakpoints).

    Commands (each also as `hv NAME`; `help hv-NAME` for details and examples):
      hv-cpus      per CPU: vendor, ring, exit count, last exit, snapshot, breaks
      hv-exits     latest exit records, decoded, with the guest instruction
      hv-vmcs      a CPU's VMCS / VMCB snapshot, decoded
      hv-ept       walk a guest-physical address through EPT / NPT, or --summary of the map
      hv-break     arm / list / delete exit breakpoints evaluated inside the hypervisor
      hv-trace-point  count matching exits inside the hypervisor without stopping
      hv-guest     guest registers from a CPU's snapshot
      hv-symbols   reload the symbols where the image runs (it moves to the top of RAM at boot)
      hv-context   the context view of the current exit break's stop (printed at every such stop)
    Settings:
      set hv color on|off   ANSI colour in hv-* output (default off)
      set hv context sections exit regs code exits vmcs | all | none   (the context view's sections)
      set hv context exits N / set hv context code N   (last exits of the CPU / instructions at RIP)

    Works on a live QEMU gdbstub (hvtrace gdb --port N) and on a core file (hvtrace gdb --core FILE)."""

    def __init__(self) -> None:
        super().__init__("hv", gdb.COMMAND_DATA, prefix=True)


class HvSet(gdb.Command):  # type: ignore[misc]
    """hvtrace settings: set hv color on|off."""

    def __init__(self, name: str) -> None:
        super().__init__(name, gdb.COMMAND_DATA, prefix=True)


class HvColour(gdb.Parameter):  # type: ignore[misc]
    """ANSI colour in the output of the hv-* commands."""

    set_doc = "Set whether hv-* output uses ANSI colour."
    show_doc = "Show whether hv-* output uses ANSI colour."

    def __init__(self) -> None:
        super().__init__("hv color", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = False

    def get_set_string(self) -> str:
        command.set_colour(bool(self.value))
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"hv colour is {svalue}."


_done: set[str] = set()


def register() -> None:
    """Create every command once per gdb process (sourcing twice is harmless)."""
    if "registered" in _done:
        return
    _done.add("registered")
    HvPrefix()
    HvSet("set hv")
    HvSet("show hv")
    HvColour()
    HvSet("set hv context")
    HvSet("show hv context")
    context.register_settings()
    for cls in COMMANDS:
        cls(f"hv-{cls.NAME}")
        cls(f"hv {cls.NAME}")
    gdb.events.stop.connect(cmd_break.on_stop)
    cmd_break.install_release_hooks()
    mi_commands.register()
