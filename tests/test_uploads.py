"""Uploads the browser way and downloads without a header: the GraphQL multipart request spec (`attachmentUpload`,
`messageSend`'s `files`) beside the raw POST /attachments, read only for a signed-in user who may send and within
the size limits; and signed, short-lived download links (`Attachment.downloadUrl`) that work in `<img src>` and
`<a href>` for that one file until they expire, served so that no upload runs as a page of ours."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from banxway.db.models import Attachment, Message
from banxway.resolvers.attachments import sign_attachment
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Org, http_client
from tests.inbox_helpers import Inbox, _count, _foreign, _member, configure_channels
from tests.live_helpers import local_uuid

ATTACHMENT_UPLOAD = """
mutation($input: AttachmentUploadInput!) {
  attachmentUpload(input: $input) {
    attachment { id filename contentType size url downloadUrl }
    userErrors { field code message }
  }
}
"""
MESSAGE_SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) {
    message { id status attachments { id filename contentType size downloadUrl } }
    userErrors { field code message }
  }
}
"""
PDF = b"%PDF-1.4 draft bill of lading MSCU1234565"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def multipart(
    query: str, variables: dict[str, Any], files: dict[str, tuple[str, tuple[str, bytes, str]]]
) -> dict[str, Any]:
    """httpx arguments of a multipart request as the spec has it: `operations` (the request, null where each file
    goes), `map` (part name → where in the variables), then the file parts. `files`: part name → (path, file)."""
    return {
        "data": {
            "operations": orjson.dumps({"query": query, "variables": variables}).decode(),
            "map": orjson.dumps({name: [path] for name, (path, _) in files.items()}).decode(),
        },
        "files": {name: file for name, (_, file) in files.items()},
    }


async def upload(
    http: httpx.AsyncClient, token: str | None, name: str, data: bytes, content_type: str
) -> httpx.Response:
    body = multipart(
        ATTACHMENT_UPLOAD, {"input": {"file": None}}, {"0": ("variables.input.file", (name, data, content_type))}
    )
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", headers=headers, **body)


async def uploaded(inbox: Inbox, name: str, data: bytes, content_type: str) -> dict:
    response = await upload(inbox.api.http, inbox.token, name, data, content_type)
    assert response.status_code == 200, response.text
    payload = response.json()["data"]["attachmentUpload"]
    assert payload["userErrors"] == [], payload
    return payload["attachment"]


@asynccontextmanager
async def app_with(settings: Settings, state: AppState, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app (and the state its resolvers read) with other settings, on the test's databases."""
    changed = settings.model_copy(update=changes)
    async with http_client(changed, dataclasses.replace(state, settings=changed)) as http:
        yield http


# -- uploads ---------------------------------------------------------------------------------------------------


async def test_attachment_upload_takes_a_multipart_request(inbox: Inbox) -> None:
    # when a file is uploaded as the spec sends it (apollo-upload-client and the like)
    attachment = await uploaded(inbox, "draft-bl.pdf", PDF, "application/pdf")
    # then it is stored as POST /attachments stores it, and downloads with the token
    assert {k: attachment[k] for k in ("filename", "contentType", "size")} == {
        "filename": "draft-bl.pdf",
        "contentType": "application/pdf",
        "size": len(PDF),
    }
    download = await inbox.api.http.get(attachment["url"], headers={"authorization": f"Bearer {inbox.token}"})
    assert download.status_code == 200 and download.content == PDF
    assert await _count(inbox, Attachment) == 1


async def test_message_send_takes_files_with_the_message(inbox: Inbox) -> None:
    # given a thread on which email can be sent, and a file uploaded before
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    before = await uploaded(inbox, "invoice.pdf", b"%PDF invoice 42", "application/pdf")
    # when a reply is sent with two more files in the same request
    variables = {
        "input": {
            "threadId": thread["id"],
            "channel": "EMAIL",
            "body": "The draft BL and the photo, as promised.",
            "to": ["buyer@example.com"],
            "attachmentIds": [before["id"]],
            "files": [None, None],
        }
    }
    files = {
        "bl": ("variables.input.files.0", ("draft-bl.pdf", PDF, "application/pdf")),
        "photo": ("variables.input.files.1", ("container.png", PNG, "image/png")),
    }
    response = await inbox.api.http.post(
        "/graphql", headers={"authorization": f"Bearer {inbox.token}"}, **multipart(MESSAGE_SEND, variables, files)
    )
    # then the message carries all three, each downloadable
    assert response.status_code == 200, response.text
    payload = response.json()["data"]["messageSend"]
    assert payload["userErrors"] == [], payload
    assert payload["message"]["status"] == "QUEUED"
    attached = {a["filename"]: a for a in payload["message"]["attachments"]}
    assert set(attached) == {"invoice.pdf", "draft-bl.pdf", "container.png"}
    assert (attached["container.png"]["contentType"], attached["container.png"]["size"]) == ("image/png", len(PNG))
    photo = await inbox.api.http.get(attached["container.png"]["downloadUrl"])
    assert photo.status_code == 200 and photo.content == PNG
    assert await _count(inbox, Attachment) == 3


async def test_a_bad_file_fails_the_send_naming_it_and_writes_nothing(
    inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given a thread, and an attachment limit of 4 KiB
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    send = {"threadId": thread["id"], "channel": "EMAIL", "body": "Files", "to": ["buyer@example.com"]}
    async with app_with(settings, state, attachment_max_bytes=4096) as http:
        results = []
        for bad, expected in (
            (("empty.pdf", b"", "application/pdf"), ("INVALID", ["files", "1"])),
            (("big.bin", b"x" * 4097, "application/octet-stream"), ("TOO_LARGE", ["files", "1"])),
        ):
            # when a send has a good file and a bad one
            files = {
                "0": ("variables.input.files.0", ("ok.pdf", PDF, "application/pdf")),
                "1": ("variables.input.files.1", bad),
            }
            body = multipart(MESSAGE_SEND, {"input": {**send, "files": [None, None]}}, files)
            response = await http.post("/graphql", headers={"authorization": f"Bearer {inbox.token}"}, **body)
            assert response.status_code == 200, response.text
            payload = response.json()["data"]["messageSend"]
            results.append(([(e["code"], e["field"]) for e in payload["userErrors"]], payload["message"], expected))
        # and files on a channel that takes none
        files = {"0": ("variables.input.files.0", ("ok.pdf", PDF, "application/pdf"))}
        internal = {"threadId": thread["id"], "channel": "INTERNAL", "body": "FYI", "files": [None]}
        response = await http.post(
            "/graphql",
            headers={"authorization": f"Bearer {inbox.token}"},
            **multipart(MESSAGE_SEND, {"input": internal}, files),
        )
    # then each is refused naming the file, and neither a message nor an attachment was written
    for errors, message, expected in results:
        assert (errors, message) == ([expected], None)
    assert [(e["code"], e["field"]) for e in response.json()["data"]["messageSend"]["userErrors"]] == [
        ("INVALID", ["files"])
    ]
    assert (await _count(inbox, Message), await _count(inbox, Attachment)) == (0, 0)


async def test_uploads_past_the_limits_are_refused_and_write_nothing(
    inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given limits of 4 KiB a file and 1 KiB for the rest of a request
    async with app_with(settings, state, attachment_max_bytes=4096, max_body_bytes=1024) as http:
        # when a file one byte over the limit is uploaded (the request is within its own limit)
        over = await upload(http, inbox.token, "big.bin", b"x" * 4097, "application/octet-stream")
        # and a request past the multipart limit (file plus the rest)
        huge = await upload(http, inbox.token, "huge.bin", b"x" * 6000, "application/octet-stream")
        # and a JSON request past the body limit of /graphql, which uploads do not raise
        big_json = await http.post(
            "/graphql",
            json={"query": "{ __typename }", "variables": {"pad": "x" * 2000}},
            headers={"authorization": f"Bearer {inbox.token}"},
        )
        # and one within both
        fine = await upload(http, inbox.token, "fine.bin", b"x" * 4000, "application/octet-stream")
    # then the first is TOO_LARGE naming the file, the others 413 saying the limit, before anything is read
    assert over.status_code == 200, over.text
    payload = over.json()["data"]["attachmentUpload"]
    assert (payload["attachment"], [(e["code"], e["field"]) for e in payload["userErrors"]]) == (
        None,
        [("TOO_LARGE", ["file"])],
    )
    assert "4096-byte limit" in payload["userErrors"][0]["message"]
    assert (huge.status_code, big_json.status_code) == (413, 413)
    assert "limit" in huge.json()["error"]
    assert fine.status_code == 200 and fine.json()["data"]["attachmentUpload"]["userErrors"] == []
    assert await _count(inbox, Attachment) == 1  # the fine one only


async def test_multipart_requests_are_read_only_for_a_signed_in_user_who_may_send(inbox: Inbox, org: Org) -> None:
    # given a viewer (who may not send)
    viewer = await _member(inbox, "viewer")
    http = inbox.api.http
    # when a page of another site posts a multipart form (no preflight, so no Authorization header)
    forged = await http.post(
        "/graphql",
        headers={"origin": "https://evil.example"},
        **multipart(
            ATTACHMENT_UPLOAD,
            {"input": {"file": None}},
            {"0": ("variables.input.file", ("x.html", b"<script>", "text/html"))},
        ),
    )
    # and with a token that is not one, and as the viewer
    bad_token = await upload(http, "not-a-token", "a.pdf", PDF, "application/pdf")
    as_viewer = await upload(http, viewer.token, "a.pdf", PDF, "application/pdf")
    # then the first two are 401 UNAUTHENTICATED before anything is read, the viewer's FORBIDDEN
    for refused in (forged, bad_token):
        assert refused.status_code == 401, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "access-control-allow-origin" not in forged.headers
    assert as_viewer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _count(inbox, Attachment) == 0


async def test_a_file_sent_as_a_plain_value_is_refused(inbox: Inbox) -> None:
    # when the file is a string in JSON variables, not a part of a multipart request
    result = await inbox.gql(ATTACHMENT_UPLOAD, {"input": {"file": "JVBERi0xLjQ="}})
    # then it is refused naming it
    payload = result["data"]["attachmentUpload"]
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["file"])]
    assert "multipart" in payload["userErrors"][0]["message"]
    assert await _count(inbox, Attachment) == 0


# -- signed downloads ------------------------------------------------------------------------------------------


def _link(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


async def test_a_signed_url_downloads_without_a_token(inbox: Inbox, settings: Settings) -> None:
    # given a file, and its signed URL
    attachment = await uploaded(inbox, "draft-bl.pdf", PDF, "application/pdf")
    path, query = _link(attachment["downloadUrl"])
    assert path == attachment["url"] and set(query) == {"expires", "signature"}
    left = int(query["expires"]) - time.time()
    assert settings.attachment_url_ttl_seconds * 2 / 3 - 2 <= left <= settings.attachment_url_ttl_seconds
    # when it is fetched as <a href> would: no Authorization header
    response = await inbox.api.http.get(attachment["downloadUrl"])
    # then the file comes, as a download, cached privately no longer than the link is valid
    assert response.status_code == 200 and response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="draft-bl.pdf"'
    assert response.headers["x-content-type-options"] == "nosniff"
    cache = response.headers["cache-control"]
    assert cache.startswith("private, max-age=")
    assert 0 < int(cache.split("=")[1]) <= left + 1


async def test_a_signed_url_is_refused_when_altered_expired_or_for_another_file(inbox: Inbox, state: AppState) -> None:
    # given two files and the first one's link
    first = await uploaded(inbox, "a.pdf", PDF, "application/pdf")
    second = await uploaded(inbox, "b.pdf", b"%PDF other", "application/pdf")
    path, query = _link(first["downloadUrl"])
    http = inbox.api.http
    expired_at = int(time.time()) - 1
    local, organization = local_uuid(first["id"]), inbox.org.id
    # when the link is altered, put on the other file, or used once expired
    tries = {
        "signature": f"{path}?expires={query['expires']}&signature={query['signature'][:-2]}AA",
        "expiry": f"{path}?expires={int(query['expires']) + 3600}&signature={query['signature']}",
        "another file": f"{second['url']}?expires={query['expires']}&signature={query['signature']}",
        "no signature": f"{path}?expires={query['expires']}",
        "not a time": f"{path}?expires=soon&signature={query['signature']}",
        "expired": f"{path}?expires={expired_at}&signature="
        + sign_attachment(state.secret_key, local, organization, expired_at),
    }
    answers = {name: await http.get(url) for name, url in tries.items()}
    # then each is 403 with the reason, and the genuine link still works
    for name, answer in answers.items():
        assert answer.status_code == 403, (name, answer.text)
        reason = answer.json()["error"]
        assert ("expired" in reason) == (name == "expired"), (name, reason)
    assert "not valid" in answers["another file"].json()["error"]
    assert (await http.get(first["downloadUrl"])).content == PDF


async def test_a_link_expires_after_the_configured_time(inbox: Inbox, settings: Settings, state: AppState) -> None:
    # given links valid for one second
    async with app_with(settings, state, attachment_url_ttl_seconds=1) as http:
        response = await upload(http, inbox.token, "a.pdf", PDF, "application/pdf")
        link = response.json()["data"]["attachmentUpload"]["attachment"]["downloadUrl"]
        _, query = _link(link)
        assert int(query["expires"]) <= time.time() + 1
        # when it is used, and again once the second is over
        await asyncio.sleep(max(0.0, int(query["expires"]) - time.time()) + 0.1)
        late = await http.get(link)
    # then it no longer works
    assert late.status_code == 403 and "expired" in late.json()["error"]


async def test_another_organizations_attachment_is_not_reachable(inbox: Inbox) -> None:
    # given a file of acme, and an admin of globex
    attachment = await uploaded(inbox, "a.pdf", PDF, "application/pdf")
    globex = await _foreign(inbox)
    await configure_channels(globex, "EMAIL")
    thread = await globex.thread()
    # when globex downloads it with its token, or attaches it to a send
    download = await globex.api.http.get(attachment["url"], headers={"authorization": f"Bearer {globex.token}"})
    send = await globex.gql(
        MESSAGE_SEND,
        {
            "input": {
                "threadId": thread["id"],
                "channel": "EMAIL",
                "body": "Yours?",
                "to": ["x@example.com"],
                "attachmentIds": [attachment["id"]],
            }
        },
    )
    # then neither finds it
    assert download.status_code == 404
    errors = send["data"]["messageSend"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("NOT_FOUND", ["attachmentIds", "0"])]


async def test_only_raster_images_are_shown_inline(inbox: Inbox) -> None:
    # given an HTML page, an SVG, a PNG and a file with quotes and a semicolon in its name
    files = {
        "page": await uploaded(inbox, "invoice.html", b"<script>alert(1)</script>", "text/html; charset=utf-8"),
        "svg": await uploaded(inbox, "logo.svg", b"<svg onload='alert(1)'/>", "image/svg+xml"),
        "png": await uploaded(inbox, "photo.png", PNG, "image/png"),
        "odd": await uploaded(inbox, 'a"b;c.png', PNG, "image/png"),
    }
    # when each is opened through its link
    got = {name: await inbox.api.http.get(f["downloadUrl"]) for name, f in files.items()}
    # then HTML and SVG are downloads (never a page of ours), sandboxed; the images are shown
    disposition = {name: r.headers["content-disposition"] for name, r in got.items()}
    assert disposition["page"] == 'attachment; filename="invoice.html"'
    assert disposition["svg"] == 'attachment; filename="logo.svg"'
    assert disposition["png"] == 'inline; filename="photo.png"'
    assert disposition["odd"] == "inline; filename*=utf-8''a%22b%3Bc.png"
    assert got["page"].headers["content-type"].startswith("text/html")
    for response in got.values():
        assert response.headers["x-content-type-options"] == "nosniff"
        policy = response.headers["content-security-policy"]
        assert "sandbox" in policy and re.search(r"default-src 'none'", policy)
