"""Stand-in servers on 127.0.0.1 that speak the providers' documented wire formats, used by the tests and the
benches alike: `providers` (Exotel, Twilio, OpenAI's transcription), `openai_server` (OpenAI-compatible chat
completions, streamed) and `mailservers` (Dovecot IMAP, aiosmtpd); `serve_in_loop` runs one in the test's loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import uvicorn


@asynccontextmanager
async def serve_in_loop(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in the running event loop; yields the port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server._serve())  # serve() would take over the process's signal handlers
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
