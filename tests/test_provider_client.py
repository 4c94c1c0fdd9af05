"""The providers' HTTP client (banxway.integrations.messaging.base): a kept-alive connection is not reused once it
sat idle as long as common servers keep one open.

A server closes an idle kept-alive connection after its keep-alive timeout (uvicorn's and Node's: 5 s). A request
sent on it as the server closes it is lost without an answer (httpx: RemoteProtocolError), and for a send that
means "the provider may have it": the message stays SENDING rather than risk a second copy. The client drops such a
connection itself first. The server here is a raw HTTP/1.1 server on 127.0.0.1 that, like that race at its worst,
closes without answering any request that comes on a connection idle for its keep-alive timeout or longer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from banxway.enums import IntegrationType
from banxway.integrations.messaging.base import OutcomeUnknown, ProviderConfig, _client, request

SERVER_KEEP_ALIVE_S = 5.0  # uvicorn's timeout_keep_alive and Node's keepAliveTimeout


class KeepAliveServer:
    def __init__(self) -> None:
        self.connections = 0
        self.answered = 0
        self.dropped = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        idle_since = time.monotonic()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if time.monotonic() - idle_since >= SERVER_KEEP_ALIVE_S:
                    self.dropped += 1
                    return  # closed without an answer: the request came as the server gave up on the connection
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                body = b'{"ok": true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
                self.answered += 1
                idle_since = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[KeepAliveServer, int]]:
    keep_alive = KeepAliveServer()
    listening = await asyncio.start_server(keep_alive.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield keep_alive, port


async def test_a_connection_idle_as_long_as_the_servers_keep_alive_is_not_reused(
    server: tuple[KeepAliveServer, int],
) -> None:
    keep_alive, port = server
    config = ProviderConfig(
        type=IntegrationType.EXOTEL,
        base_url=f"http://127.0.0.1:{port}",
        account_sid="acct",
        api_key="key",
        api_token="token",
        public_only=False,
    )
    try:
        await _sends_around_an_idle_wait(keep_alive, config)
    finally:
        await _client(config).aclose()  # the client kept for this loop and account: its connection ends the handler


async def _sends_around_an_idle_wait(keep_alive: KeepAliveServer, config: ProviderConfig) -> None:
    # given a send answered on a kept-alive connection, and a second right after it (the connection is reused)
    assert await request(config, "POST", "/v2/messages", json={"n": 1}) == {"ok": True}
    assert await request(config, "POST", "/v2/messages", json={"n": 2}) == {"ok": True}
    assert keep_alive.connections == 1
    # when the next send comes after the connection sat idle for the server's keep-alive timeout
    await asyncio.sleep(SERVER_KEEP_ALIVE_S + 0.2)
    try:
        reply = await request(config, "POST", "/v2/messages", json={"n": 3})
    except OutcomeUnknown as exc:
        pytest.fail(f"the idle connection was reused and the send's outcome is unknown: {exc}")
    # then it went out on a new connection, and nothing was dropped
    assert reply == {"ok": True}
    assert (keep_alive.connections, keep_alive.answered, keep_alive.dropped) == (2, 3, 0)
