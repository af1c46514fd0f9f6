"""`python -m hvtrace` runs the CLI (the tests use this with the venv's interpreter)."""

from hvtrace.cli import main

raise SystemExit(main())
