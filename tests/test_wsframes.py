"""The direct frame writer's frames (banxway/wsframes.py), read back by the websockets library's own parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from banxway.wsframes import frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65_535, 65_536, 300_000])
def test_a_header_and_its_data_parse_as_one_final_unmasked_text_frame(length: int) -> None:
    data = ("é" * (length // 2) + "x" * (length % 2)).encode()
    assert len(data) == length
    reader = StreamReader()
    reader.feed_data(frame_header(length) + data + b"\x81\x00")  # and the next frame starts right after it
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:  # pragma: no cover - the parser asked for more bytes than the frame has
        pytest.fail("the frame is longer than its header says")
    assert (frame.opcode, frame.fin, frame.rsv1, frame.data) == (Opcode.TEXT, True, False, data)
    assert reader.buffer == b"\x81\x00"
