"""Every key of the TUI, declared once: the `?` help, the Bindings of each screen and the command palette
are generated from KEYS, so the three cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from textual.binding import Binding

BREAK_FILTER_HELP = "REASON [--cpu N] [--leaf L | --msr X | --cr N | --port P] [--gpa A-B]"

# where a key applies: the main screen (any source), the main screen of a replay, the break-hit screen
MAIN, REPLAY, HIT = "main", "replay", "hit"


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma separated (the first is shown)
    action: str  # the action it runs (an ``action_*`` method of the screen's owner)
    label: str  # footer and palette title
    help: str  # the help table's line (markdown)
    where: str = MAIN
    footer: bool = False  # shown in the footer
    display: str | None = None  # how the key is written when its name is not what one types
    palette: bool = True  # offered in the command palette (only actions without an argument)

    @property
    def shown(self) -> str:
        return self.display or self.keys.split(",")[0]


DRILL_HELP = "drill down into the selected reason (CPUID leaf, MSR, CR, port, GPA page)"
SEARCH_HELP = "search the log (hex value: RIP / operand / GPA; else a reason regex)"
BREAK_HELP = "exit break on the selected reason (on the selected CPU, or any): toggle"
BREAK_FILTER_KEY_HELP = (
    "exit break with a filter: `cpuid --leaf 1`, `msr_write --msr 0xc0000080 --cpu 1`, `any --cpu 0`"
)

KEYS: tuple[Key, ...] = (
    Key("q", "quit", "Quit", "quit (stops a session the TUI started)", footer=True, palette=False),
    Key("question_mark,f1", "help", "Help", "this help", footer=True, display="?"),
    Key("ctrl+p", "command_palette", "Commands", "command palette", palette=False),
    Key("c", "next_cpu", "CPU", "reason table scope: next CPU (or all)", footer=True),
    Key("C", "prev_cpu", "Previous CPU", "reason table scope: previous CPU (or all)"),
    Key("s", "sort", "Sort", "sort the reason table: SUM, PER SEC, %, name", footer=True),
    Key("z", "toggle_zero", "Zeros", "show / hide reasons with zero exits", footer=True),
    Key("enter", "select_cursor", "Drill down", DRILL_HELP, palette=False),  # the table's own key
    Key("p", "pause_log", "Pause log", "pause / resume the log", footer=True),
    Key("f", "filter", "Filter", "filter the log: `cpu=0,1 reason=REGEX` (empty clears)", footer=True),
    Key("slash", "search", "Search", SEARCH_HELP, footer=True, display="/"),
    Key("n", "search_next", "Next match", "search: next match"),
    Key("N", "search_prev", "Previous match", "search: previous match"),
    Key("end", "follow", "Follow", "follow the newest records again"),
    Key("b", "toggle_break", "Break", BREAK_HELP, footer=True),
    Key("B", "break_filter", "Break with filter", BREAK_FILTER_KEY_HELP),
    Key("r", "resume", "Resume the VM", "resume the VM paused at a break"),
    Key("x", "clear_breaks", "Clear breaks", "delete every exit break"),
    Key("space", "play_pause", "Play/Pause", "play / pause", where=REPLAY),
    Key("plus", "faster", "Faster", "speed x2", where=REPLAY, display="+"),
    Key("minus", "slower", "Slower", "speed /2", where=REPLAY, display="-"),
    Key("g", "seek", "Seek", "seek (`12.5` seconds, `#1000` record, `40%`)", where=REPLAY),
    Key("j", "jump", "Next of reason", "jump to the next exit of the selected reason", where=REPLAY),
    Key("r", "decide('resume')", "Resume", "resume the VM", where=HIT, footer=True),
    Key(
        "s",
        "decide('step')",
        "Step (next exit on this CPU)",
        "step to the next exit of that CPU",
        where=HIT,
        footer=True,
    ),
    Key(
        "x",
        "decide('clear')",
        "Clear breaks + resume",
        "delete every exit break and resume",
        where=HIT,
        footer=True,
    ),
    Key(
        "escape",
        "decide(None)",
        "Back (VM stays paused)",
        "back (the VM stays paused)",
        where=HIT,
        footer=True,
    ),
)


def keys_for(*where: str) -> list[Key]:
    return [k for k in KEYS if k.where in where]


def bindings(*where: str) -> list[Binding]:
    """The Bindings of a screen (the palette and DataTable keys are Textual's own, not bound again)."""
    return [
        Binding(k.keys, k.action, k.label, show=k.footer, key_display=k.display)
        for k in keys_for(*where)
        if k.action not in ("command_palette", "select_cursor")
    ]


def help_markdown() -> str:
    def table(keys: Iterable[Key]) -> list[str]:
        return ["| key | action |", "|---|---|", *(f"| `{k.shown}` | {k.help} |" for k in keys)]

    return "\n".join(
        [
            "# hvtrace tui",
            "",
            "Live VM exits per CPU from the hypervisor's trace rings (or a replay file).",
            "",
            *table(keys_for(MAIN)),
            "",
            "In a replay (`--replay FILE`):",
            "",
            *table(keys_for(REPLAY)),
            "",
            "At a break (gdb/MI on the session's gdb stub: QEMU's, or the hypervisor's own on Bochs; the VM "
            "is paused) the hit screen "
            "shows the exit decoded, the guest registers and instructions, and the VMCS / VMCB snapshot:",
            "",
            *table(keys_for(HIT)),
        ]
    )


Action = Callable[[], object]


def palette(find: Callable[[str], Action | None], replay: bool) -> list[tuple[str, str, Action]]:
    """(title, help, callback) for the command palette: the main keys, and the replay keys in a replay.
    ``find`` maps an action name to its method (None: not offered)."""
    out = []
    for k in keys_for(MAIN, REPLAY) if replay else keys_for(MAIN):
        fn = find(k.action) if k.palette else None
        if fn is not None:
            out.append((("Replay: " if k.where == REPLAY else "") + k.label, k.help.replace("`", ""), fn))
    return out
