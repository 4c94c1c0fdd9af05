"""Whole text frames written straight to a WebSocket connection of uvicorn's: the live fan-out's fast path.

A live event goes to hundreds of subscribers as the same bytes but for each one's operation id. Sent the ASGI way,
each of those writes builds a message dict, passes Starlette's and uvicorn's checks, websockets' framing and
permessage-deflate (~60 µs in all under load, the compression half of it: `bench/fanout.py`'s profile). Written as
one unmasked frame to the connection's transport it costs a few µs, mostly the `send` system call.

What makes this safe:
* a frame goes in one `transport.write`, and uvicorn (websockets-sansio) also writes each of its frames in one call
  and never fragments a message, so on the one event loop a direct frame never lands inside another one;
* such frames are not compressed. RFC 7692 lets an endpoint send a message uncompressed (RSV1 unset) on a connection
  that negotiated permessage-deflate, and the compression context only moves with compressed messages, so the
  connection's other messages are unaffected;
* the writer declines (returns False) whenever the ASGI path would have to wait or fail: the transport paused for
  back-pressure, the handshake not done, a close sent or received, the connection lost. The caller then sends the
  ASGI way, which waits for the socket or raises the disconnect as before.

Only uvicorn's websockets-sansio protocol (`uvicorn --ws auto` with websockets installed, what `banxway serve`
runs) gets a writer; under any other server, or the test client, there is none and every frame goes the ASGI way.
(`banxway serve` does not offer permessage-deflate at all; the point about compression is for uvicorn run with its
default, as the tests do.)
"""

from __future__ import annotations

import struct
import weakref
from typing import Any

from websockets.protocol import State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn without websockets: no direct frames
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

SCOPE_KEY = "banxway.frame_writer"

_FIN_TEXT = 0x81  # FIN + opcode 1 (text); a server's frames are not masked


class FrameWriter:
    """Writes whole text frames to one uvicorn WebSocket connection, bypassing ASGI. It holds the protocol weakly:
    the protocol holds the scope, which holds the writer, and a strong reference would keep every closed connection
    alive until a full garbage collection."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = weakref.ref(protocol)

    def write_text(self, data: bytes) -> bool:
        """Write `data` (UTF-8 text) as one frame now; False, having written nothing, when it must go the ASGI way."""
        protocol = self._protocol()
        if (
            protocol is None
            or protocol.disconnected
            or protocol.close_sent
            or not protocol.handshake_complete
            or protocol.initial_response is not None
            or not protocol.writable.is_set()
            or protocol.conn.state is not State.OPEN
        ):
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        transport.write(frame_header(len(data)) + data)
        return True


def frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame carrying `length` bytes (RFC 6455 §5.2)."""
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length)
    return struct.pack("!BBQ", _FIN_TEXT, 127, length)


def attach(scope: Any, send: Any) -> None:
    """Called with the ASGI `send` that uvicorn gave a WebSocket connection, before anything wraps it: put a
    `FrameWriter` in the scope when it is uvicorn's websockets-sansio protocol."""
    protocol = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is not None and isinstance(protocol, WebSocketsSansIOProtocol):
        scope[SCOPE_KEY] = FrameWriter(protocol)


def writer(scope: Any) -> FrameWriter | None:
    """The connection's `FrameWriter`, if it has one."""
    return scope.get(SCOPE_KEY)
