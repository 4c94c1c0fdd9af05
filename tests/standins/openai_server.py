"""A stand-in for an OpenAI-compatible chat completions API, for testing banxway's use of the real `openai` client.

`openai_server()` / the `openai_standin` fixture: a Starlette app served by uvicorn on 127.0.0.1 (a free port) in
the test's event loop, answering `POST /v1/chat/completions` in OpenAI's documented wire format:

* `Authorization: Bearer <api_key>` is checked (401 with OpenAI's error JSON otherwise); `model` and `messages`
  are validated (400, with `param`); every request is recorded in `requests` (the parsed JSON body, the headers,
  and for a stream when the client went away: `disconnected_at`, a `time.monotonic()`).
* Without `stream`: a `chat.completion` object whose content is scripted (`reply_next`, first in first out), or the
  default reply; a `response_format` of type `json_schema` without a scripted reply gets the smallest JSON the
  schema allows.
* With `stream: true`: `text/event-stream` of `data: <chat.completion.chunk>` events: a first chunk per choice
  with the assistant role, the content word by word for each of the `n` choices (interleaved, with their
  `index`), a chunk per choice with `finish_reason: "stop"`, with `stream_options.include_usage` a last chunk with
  `choices: []` and the `usage`, then `data: [DONE]`.
* `POST /v1/embeddings`: deterministic embeddings (`hashed_embedding`: a hashed bag of words), recorded in
  `embedding_requests`; scripted failures apply to it too.
* Scripted trouble, first in first out: `fail_next(status, retry_after=...)` (429 with Retry-After, 500, 400, ...
  with OpenAI's error JSON), `cut_next()` (a stream that stops part-way: the connection dropped, or with
  `abrupt=False` a body that ends without finish_reason or [DONE]), `slow_first_token(seconds)`; `chunk_delay`
  paces every content chunk.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.standins import serve_in_loop
from tests.standins.providers import openai_error

DEFAULT_REPLY = "Thank you for your message. We are checking and will revert shortly."
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass
class ChatRequest:
    """One request as the stand-in received it."""

    headers: dict[str, str]
    json: Any
    at: float
    status: int = 200
    disconnected_at: float | None = None  # a stream the client left before its end
    chunks_sent: int = 0


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    message: str | None


@dataclass
class _Cut:
    after_chunks: int
    abrupt: bool


@dataclass
class _Reply:
    contents: list[str]
    usage: tuple[int, int] | None = None


class _DropConnection(Exception):
    """Raised inside a streaming body: uvicorn then closes the connection without ending the response."""


@dataclass
class OpenAIStandIn:
    api_key: str = "sk-standin"
    base_url: str = ""  # http://127.0.0.1:<port>/v1, set once serving
    default_reply: str = DEFAULT_REPLY
    chunk_delay: float = 0.0  # seconds before each content chunk
    requests: list[ChatRequest] = field(default_factory=list)
    _replies: deque[_Reply] = field(default_factory=deque)
    _failures: deque[_Failure] = field(default_factory=deque)
    _cuts: deque[_Cut] = field(default_factory=deque)
    _slow: deque[float] = field(default_factory=deque)
    embedding_requests: list[ChatRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._handle, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    # -- scripting --

    def reply_next(self, content: str | Sequence[str], *, usage: tuple[int, int] | None = None) -> None:
        """The content of the next completion: one text for every choice, or one per choice (choice i gets
        `content[i % len(content)]`); `usage` as (prompt_tokens, completion_tokens), else counted here."""
        contents = [content] if isinstance(content, str) else list(content)
        self._replies.append(_Reply(contents, usage))

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        for _ in range(times):
            self._failures.append(_Failure(status, headers, message))

    def cut_next(self, *, after_chunks: int = 3, abrupt: bool = True) -> None:
        """The next stream stops after `after_chunks` content chunks: the connection dropped (`abrupt`), or the
        body ended cleanly but without finish_reason and [DONE]."""
        self._cuts.append(_Cut(after_chunks, abrupt))

    def slow_first_token(self, seconds: float) -> None:
        """The next stream sends its headers at once, then waits `seconds` before its first chunk."""
        self._slow.append(seconds)

    async def wait_for_disconnect(self, request: ChatRequest, timeout: float = 2.0) -> float:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while request.disconnected_at is None:
            if time.monotonic() >= deadline:
                raise AssertionError(f"no disconnect within {timeout} s ({request.chunks_sent} chunks sent)")
            await asyncio.sleep(0.005)
        return request.disconnected_at

    # -- handling --

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        recorded = ChatRequest({k.lower(): v for k, v in request.headers.items()}, payload, time.monotonic())
        self.requests.append(recorded)
        response = self._refusal(recorded)
        if response is None:
            response = self._stream(recorded) if payload.get("stream") else self._completion(recorded)
        recorded.status = response.status_code
        return response

    async def _embeddings(self, request: Request) -> Response:
        """`POST /v1/embeddings`: one vector per input, the hashed bag of its words (EMBEDDING_DIMENSIONS, unit
        length), so that texts sharing words are close; recorded in `embedding_requests`."""
        try:
            payload = json.loads(await request.body())
        except ValueError:
            payload = None
        recorded = ChatRequest({k.lower(): v for k, v in request.headers.items()}, payload, time.monotonic())
        self.embedding_requests.append(recorded)
        if recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        if self._failures:
            failure = self._failures.popleft()
            return _error(failure.status, failure.message, headers=failure.headers)
        if not isinstance(payload, dict) or not isinstance(payload.get("model"), str) or not payload["model"]:
            return _error(400, "you must provide a model parameter", param="model")
        inputs = payload.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
            return _error(400, "'input' must be a non-empty string or array of strings.", param="input")
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_embedding(text)} for i, text in enumerate(inputs)
        ]
        tokens = sum(_tokens(text) for text in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": payload["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _refusal(self, recorded: ChatRequest) -> Response | None:
        """The error answer to this request, if it gets one."""
        if recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        payload = recorded.json
        if not isinstance(payload, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        if self._failures:
            failure = self._failures.popleft()
            return _error(failure.status, failure.message, headers=failure.headers)
        if not isinstance(payload.get("model"), str) or not payload["model"]:
            return _error(400, "you must provide a model parameter", param="model")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "Missing required parameter: 'messages'.", param="messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return _error(400, f"Invalid value for 'messages[{index}].role'.", param=f"messages[{index}].role")
            if not isinstance(message.get("content"), str | list):
                return _error(400, f"Invalid 'messages[{index}].content'.", param=f"messages[{index}].content")
        n = payload.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 128:
            return _error(400, f"Invalid 'n': {n!r}, must be 1 to 128.", param="n")
        return None

    def _reply(self, payload: dict[str, Any]) -> tuple[list[str], tuple[int, int] | None]:
        n = payload.get("n", 1)
        if self._replies:
            reply = self._replies.popleft()
            return [reply.contents[i % len(reply.contents)] for i in range(n)], reply.usage
        response_format = payload.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return [json.dumps(_smallest(schema, schema))] * n, None
        if response_format.get("type") == "json_object":
            return ["{}"] * n, None
        return [self.default_reply] * n, None

    def _completion(self, recorded: ChatRequest) -> Response:
        payload = recorded.json
        contents, usage = self._reply(payload)
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload["model"],
            "system_fingerprint": "fp_standin",
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for index, content in enumerate(contents)
            ],
            "usage": _usage(payload, contents, usage),
        }
        return JSONResponse(body)

    def _stream(self, recorded: ChatRequest) -> Response:
        payload = recorded.json
        contents, usage = self._reply(payload)
        cut = self._cuts.popleft() if self._cuts else None
        slow = self._slow.popleft() if self._slow else 0.0
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": payload["model"],
            "system_fingerprint": "fp_standin",
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {**base, "choices": choices, **({"usage": None} if include_usage else {}), **extra}
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        pieces = [_words(content) for content in contents]

        async def body() -> AsyncIterator[bytes]:
            finished = False
            try:
                if slow:
                    await asyncio.sleep(slow)
                yield event(
                    [choice(i, {"role": "assistant", "content": "", "refusal": None}) for i in range(len(pieces))]
                )
                for position in range(max(len(p) for p in pieces)):
                    for index, words in enumerate(pieces):
                        if position >= len(words):
                            continue
                        if cut is not None and recorded.chunks_sent >= cut.after_chunks:
                            if cut.abrupt:
                                raise _DropConnection
                            finished = True
                            return
                        if self.chunk_delay:
                            await asyncio.sleep(self.chunk_delay)
                        yield event([choice(index, {"content": words[position]})])
                        recorded.chunks_sent += 1
                for index in range(len(pieces)):
                    yield event([choice(index, {}, "stop")])
                if include_usage:
                    yield (
                        b"data: "
                        + json.dumps({**base, "choices": [], "usage": _usage(payload, contents, usage)}).encode()
                        + b"\n\n"
                    )
                yield b"data: [DONE]\n\n"
                finished = True
            except _DropConnection:
                finished = True
                raise
            finally:
                if not finished:  # cancelled by Starlette when the client went away, or closed
                    recorded.disconnected_at = time.monotonic()

        return StreamingResponse(body(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _error(
    status: int,
    message: str | None = None,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = openai_error(status, message, code)
    body["error"]["param"] = param
    return JSONResponse(body, status_code=status, headers=headers)


EMBEDDING_DIMENSIONS = 256


def hashed_embedding(text: str) -> list[float]:
    """A deterministic embedding: each word (lower-cased, a trailing "s" dropped) adds 1 to a dimension picked by
    its CRC32; normalised to unit length."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if len(word) > 2:
            vector[zlib.crc32(word.rstrip("s").encode()) % EMBEDDING_DIMENSIONS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _words(text: str) -> list[str]:
    """`text` in pieces of a word and the space after it; joined they give `text` back."""
    pieces: list[str] = []
    for part in text.split(" "):
        pieces.append(part + " ")
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p] or [""]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _usage(payload: dict[str, Any], contents: list[str], scripted: tuple[int, int] | None) -> dict[str, int]:
    if scripted is not None:
        prompt, completion = scripted
    else:
        prompt = sum(_tokens(m["content"]) for m in payload["messages"] if isinstance(m.get("content"), str))
        completion = sum(_tokens(c) for c in contents)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _smallest(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """The smallest value a JSON schema (as OpenAI's strict mode allows them) accepts: null where it may be."""
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _smallest(target, root)
    if "anyOf" in schema:
        options = schema["anyOf"]
        if any(option.get("type") == "null" for option in options):
            return None
        return _smallest(options[0], root)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {name: _smallest(schema["properties"][name], root) for name in schema.get("required", [])}
    return {"array": [], "string": "", "number": 0, "integer": 0, "boolean": False, "null": None}.get(kind)


@asynccontextmanager
async def openai_server() -> AsyncIterator[OpenAIStandIn]:
    """The stand-in served by uvicorn on 127.0.0.1 in the running loop."""
    standin = OpenAIStandIn()
    async with serve_in_loop(standin.app) as port:
        standin.base_url = f"http://127.0.0.1:{port}/v1"
        yield standin


@pytest.fixture
async def openai_standin() -> AsyncIterator[OpenAIStandIn]:
    async with openai_server() as server:
        yield server
