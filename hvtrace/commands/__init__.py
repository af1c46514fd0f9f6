"""The `hvtrace` subcommands: each module here (and :mod:`hvtrace.trace.cli` for capture, report and
export) owns its options and its handler: ``register(sub)`` adds the parser with
:func:`hvtrace.commands.parser.add_command` (which sets ``func=handler``, the command's summary and
description from :mod:`~hvtrace.commands.command_texts` and its exit codes from
:mod:`~hvtrace.commands.exit_tables`) and :func:`hvtrace.cli.main` calls ``args.func(args)``.
"""
