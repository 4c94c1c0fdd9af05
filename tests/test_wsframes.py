"""The direct frame writer's frames (banxway/wsframes.py), read back by the websockets library's own parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from banxway.wsframes import FrameWriter, frame_header


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


def test_the_writer_does_not_keep_its_connection_alive() -> None:
    # given a writer of a connection (uvicorn's protocol holds the scope, which holds the writer: a cycle if strong)
    class Protocol:
        pass

    protocol = Protocol()
    writer = FrameWriter(protocol)
    # when the connection is dropped, then it is freed at once (no collection needed) and the writer declines
    del protocol
    assert writer.write_text(b"{}") is False
