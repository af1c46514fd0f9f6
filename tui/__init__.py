"""hvtrace.tui: the Textual face (`hvtrace tui`): per-CPU VM-exit rates, reasons, drill-down and the
exit log, live from the hypervisor's trace rings or replayed from a trace file.

Installed as ``hvtrace.tui`` (setuptools package-dir mapping), never as a top-level ``tui``; modules
import each other relatively. model: numpy aggregation; recent: the log ring; fmt: log lines;
sources: live capture / replay; poller: the reading thread; widgets; screens and break_screen;
messages: what other threads hand the UI; keys: every key, its help and palette entry; base: the
state and repaint; view_actions, replay_actions, break_actions: what the keys do; breaks: the break
controller (gdb/MI); app: composes them; main: the CLI entry; screenshot: docs/tui.svg.
"""
