"""``python -m hvtrace.guest_assets``: the assets' command line (:mod:`hvtrace.guest_assets.cli`)."""

from hvtrace.guest_assets.cli import main

raise SystemExit(main())
