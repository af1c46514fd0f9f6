"""The `hvtrace` subcommands: each module here (and :mod:`hvtrace.trace.cli` for capture, report and
export) owns its parser and its handler: ``register(sub)`` adds the parser with
``set_defaults(func=handler)`` and :func:`hvtrace.cli.main` calls ``args.func(args)``.
"""
