"""Port-0xE9 frame stream: resync on magic, CRC-32 check, bad frames counted, growing file, seq gaps."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from hvtrace.abi import HV_FRAME_MAGIC, HV_FRAME_SIZE
from hvtrace.trace.frames import FrameStreamSource, decode_frames
from hvtrace.trace.records import RECORD_DTYPE


def frame(seq: int, cpu: int = 0, corrupt: bool = False) -> bytes:
    r = np.zeros(1, RECORD_DTYPE)
    r["seq"], r["cpu"], r["tsc"], r["kind"], r["arg0"] = seq, cpu, seq * 3, 1, 0x0A0A0A0A  # "\n" bytes too
    rec = r.tobytes()
    crc = zlib.crc32(rec)
    if corrupt:
        rec = rec[:20] + b"\xff" + rec[21:]
    return struct.pack("<I", HV_FRAME_MAGIC) + rec + struct.pack("<I", crc)


def test_frames_between_console_text_and_a_corrupted_frame() -> None:
    buf = b"vmx: hello\n" + frame(1) + b"text!HV" + frame(2) + frame(3, corrupt=True) + frame(4) + b"tail\n"
    recs, used, bad, text = decode_frames(buf, final=True)
    assert recs["seq"].tolist() == [1, 2, 4]
    assert bad == 1
    assert used == len(buf)
    assert text == len(buf) - 3 * HV_FRAME_SIZE


def test_growing_file_split_at_every_boundary(tmp_path: Path) -> None:
    stream = b"boot\n" + b"".join(frame(i, cpu=i % 2) for i in range(1, 41)) + b"end\n"
    for step in (1, 7, HV_FRAME_SIZE - 1, HV_FRAME_SIZE, HV_FRAME_SIZE + 1, 500):
        p = tmp_path / f"e9-{step}.bin"
        p.write_bytes(b"")
        src = FrameStreamSource(p, alive=lambda: True)
        got = []
        for i in range(0, len(stream), step):
            with p.open("ab") as fh:
                fh.write(stream[i : i + step])
            got.append(src.poll())
        got.append(src.poll(final=True))
        seqs = np.concatenate(got)["seq"].tolist()
        assert seqs == list(range(1, 41)), step
        assert src.stats.bad_frames == 0


def test_sequence_gaps_are_counted_as_lost_per_cpu(tmp_path: Path) -> None:
    p = tmp_path / "e9.bin"
    p.write_bytes(
        frame(1, 0) + frame(2, 0) + frame(5, 0) + frame(1, 1) + frame(3, 1, corrupt=True) + frame(4, 1)
    )
    src = FrameStreamSource(p)
    recs = src.poll(final=True)
    assert len(recs) == 5
    assert src.stats.lost == {0: 2, 1: 2}
    assert src.stats.bad_frames == 1
