"""The formats `hvtrace export` writes (its --format choices), without importing the exporters."""

from __future__ import annotations

FORMATS = ("perfetto", "perfetto-proto", "perfetto-json", "csv", "parquet")
#: Above this many records ``--format perfetto`` writes the protobuf (see hvtrace.trace.export).
PERFETTO_JSON_MAX = 50_000
