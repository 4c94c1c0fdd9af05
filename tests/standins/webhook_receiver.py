"""A stand-in for an organization's webhook receiver: an HTTP server on 127.0.0.1 that records every request
(path, headers, raw body) and answers from a script: a status per request in order (then `default`), where
"redirect" answers 302 to /elsewhere and "hang" waits `hang_seconds` before answering 200."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.standins import serve_in_loop


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    script: list[int | str] = field(default_factory=list)
    default: int | str = 200
    hang_seconds: float = 3.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def answer_with(self, *answers: int | str, default: int | str = 200) -> None:
        self.script[:] = list(answers)
        self.default = default

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(Received(request.url.path, {k.lower(): v for k, v in request.headers.items()}, body))
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await asyncio.sleep(self.hang_seconds)
            return PlainTextResponse("late")
        if answer == "redirect":
            return Response(status_code=302, headers={"location": self.url.rsplit("/", 1)[0] + "/elsewhere"})
        status = int(answer)
        return PlainTextResponse(f"answer {status}: " + "x" * 2000, status_code=status)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST", "GET"])])
    async with serve_in_loop(app) as port:
        receiver.url = f"http://127.0.0.1:{port}/hooks/banxway"
        yield receiver
