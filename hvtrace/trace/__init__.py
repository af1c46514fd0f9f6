"""Host side of the trace pipeline: sources, ring reader, trace files, capture, report, export, replay.

Data flow (one way)::

    MemorySource (shared RAM / dump / gdb) -> discovery -> RingSet (RingReader per CPU) ─┐
    FrameStreamSource (port 0xE9 byte stream) ──────────────────────────────────────────┴-> record batches
        -> TraceWriter (.hvt) -> TraceFile -> report / export / Replay
"""
