"""hvtrace.tui: the Textual face (`hvtrace tui`), planned for a later issue.

It will show per-CPU VM-exit rates and the live exit log read from the hypervisor's trace rings.
Installed as ``hvtrace.tui`` (setuptools package-dir mapping), never as a top-level ``tui``.
"""
