"""The `hvtrace` subcommands: each module here (and :mod:`hvtrace.trace.cli` for capture, report and
export) owns its options: ``register(sub)`` adds the parser with
:func:`hvtrace.commands.parser.add_command` (which sets ``func=handler``, the command's summary and
description from :mod:`~hvtrace.commands.command_texts` and its exit codes from
:mod:`~hvtrace.commands.exit_tables`) and :func:`hvtrace.cli.main` calls ``args.func(args)``. A handler
that needs more than the standard library and the parsers' modules lives in a ``*_handler`` module named
as ``"module:function"``, imported only when its command runs: building the parser (every command's, for
any command) loads no emulator launcher, gdb driver, numpy or symbol reader (tests/unit/test_cli_lazy.py).
"""
