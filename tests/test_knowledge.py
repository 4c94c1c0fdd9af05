"""The knowledge base: sources of every kind (text, Markdown, HTML, an uploaded PDF, a URL fetched from a local
server), chunking, full-text retrieval, embeddings and hybrid ranking against the OpenAI stand-in, tenancy and
roles."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from banxway.context import Context, Viewer
from banxway.db.models import AuditEntry, KnowledgeChunk
from banxway.db.session import system_session
from banxway.enums import Role
from banxway.errors import DomainError
from banxway.extraction.chunking import chunk_text, html_to_text, markdown_to_text
from banxway.resolvers import knowledge
from banxway.resolvers.demo import pdf_with_text
from banxway.schema.ids import local_id
from tests.inbox_helpers import Inbox, _foreign, _member
from tests.knowledge_corpus import load
from tests.standins import serve_in_loop
from tests.standins.openai_server import openai_server

CREATE = """
mutation($input: KnowledgeSourceCreateInput!) {
  knowledgeSourceCreate(input: $input) {
    knowledgeSource { id title kind url characters chunkCount embeddingModel }
    userErrors { field code message }
  }
}
"""
DELETE = """
mutation($id: ID!) { knowledgeSourceDelete(id: $id) { deletedId userErrors { field code message } } }
"""
SOURCES = "{ knowledgeSources { id title kind chunkCount } }"
SEARCH = """
query($q: String!, $first: Int) {
  knowledgeSearch(query: $q, first: $first) { chunkId text score confidence position source { id title url } }
}
"""

FAQ_MD = """# Shipping FAQ

## Free time

Free time at **Nhava Sheva** is *7 days* for imports. After that, demurrage applies per container per day.

## Reefers

We move [reefer containers](https://example.com/reefer) between -30 and +30 degrees Celsius.
"""
PAGE_HTML = """<!doctype html><html><head><title>Customs help</title><style>p { color: red }</style>
<script>var secret = "not text";</script></head>
<body><nav>Home | About</nav><h1>Customs clearance</h1>
<p>For an import clearance we need the commercial invoice, the packing list and the bill of lading.</p>
<p>Duties are paid by the importer before release.</p></body></html>"""


async def _admin_context(inbox: Inbox, settings: Any = None) -> Context:
    me = await inbox.gql("{ me { id } }")
    user_id = local_id(me["data"]["me"]["id"], "User")
    state = inbox.api.state if settings is None else dataclasses.replace(inbox.api.state, settings=settings)
    viewer = Viewer(user_id, inbox.org.id, Role.ADMIN, inbox.org.admin_email, "Admin")  # type: ignore[arg-type]
    return Context(state, viewer_or_none=viewer)


async def _create(inbox: Inbox, **fields: Any) -> dict:
    return (await inbox.ok(CREATE, {"input": fields}, "knowledgeSourceCreate"))["knowledgeSource"]


async def _search(inbox: Inbox, query: str, first: int = 3, token: str | None = None) -> list[dict]:
    result = await inbox.gql(SEARCH, {"q": query, "first": first}, token)
    assert "errors" not in result, result
    return result["data"]["knowledgeSearch"]


# -- chunking (pure) -------------------------------------------------------------------------------------------


def test_chunks_are_about_800_characters_cut_on_boundaries_with_overlap() -> None:
    paragraphs = [
        " ".join(f"Paragraph {p} sentence {s} says something about freight and customs." for s in range(6))
        for p in range(8)
    ]
    chunks = chunk_text("\n\n".join(paragraphs), size=800, overlap=160)
    assert len(chunks) > 3
    assert all(len(chunk) <= 800 + 160 for chunk in chunks)
    # every chunk ends on a sentence's end, and the next one starts with that last sentence again (the overlap)
    assert all(chunk.endswith(".") for chunk in chunks)
    last_sentence = chunks[0].rsplit(". ", 1)[-1]
    assert chunks[1].startswith(last_sentence)
    # nothing is lost
    for p in range(8):
        assert any(f"Paragraph {p} sentence 5" in chunk for chunk in chunks)


def test_html_and_markdown_become_plain_text() -> None:
    text, title = html_to_text(PAGE_HTML)
    assert title == "Customs help"
    assert "secret" not in text and "color" not in text
    assert "Customs clearance\n\nFor an import clearance" in text
    plain = markdown_to_text(FAQ_MD)
    assert "**" not in plain and "](" not in plain and "#" not in plain
    assert "Free time at Nhava Sheva is 7 days for imports." in plain
    assert "We move reefer containers between" in plain


# -- ingestion of each kind and retrieval ------------------------------------------------------------------------


async def test_text_markdown_and_html_sources_are_chunked_and_found_by_full_text_search(inbox: Inbox) -> None:
    # given three sources
    text = await _create(inbox, kind="TEXT", title="Opening hours", text="We are open Monday to Friday, 9 to 6.")
    markdown = await _create(inbox, kind="MARKDOWN", text=FAQ_MD)
    page = await _create(inbox, kind="HTML", text=PAGE_HTML)
    # then each is stored with its title (Markdown: its first heading; HTML: its <title>) and chunks
    assert (text["title"], text["kind"], text["chunkCount"]) == ("Opening hours", "TEXT", 1)
    assert (markdown["title"], markdown["kind"]) == ("Shipping FAQ", "MARKDOWN")
    assert (page["title"], page["kind"]) == ("Customs help", "HTML")
    assert markdown["embeddingModel"] is None  # no embeddings API configured
    listed = (await inbox.gql(SOURCES))["data"]["knowledgeSources"]
    assert [s["title"] for s in listed] == ["Opening hours", "Shipping FAQ", "Customs help"]
    # when searching, the right chunk comes first (stemmed: "demurrage charged" finds "demurrage applies")
    hits = await _search(inbox, "How many days of free time at Nhava Sheva before demurrage?")
    assert hits[0]["source"]["title"] == "Shipping FAQ"
    assert "7 days" in hits[0]["text"]
    assert 0 < hits[0]["confidence"] <= 1
    hits = await _search(inbox, "who pays the duties?")
    assert hits[0]["source"]["title"] == "Customs help"
    assert await _search(inbox, "zzzz qqqq") == []
    # and the administration is audited
    async with system_session(inbox.api.state.sessionmaker) as session:
        actions = list(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.organization_id == inbox.org.id))
        )
    assert actions.count("knowledgeSourceCreate") == 3


async def test_a_pdf_upload_becomes_a_source(inbox: Inbox) -> None:
    from tests.test_documents import upload

    pdf = pdf_with_text("Warehouse rules", "Cargo is stored free for 3 days at our Bhiwandi warehouse.")
    attachment = await upload(inbox, "warehouse.pdf", pdf, "application/pdf")
    source = await _create(inbox, kind="PDF", attachmentId=attachment, title="Warehouse")
    assert source["kind"] == "PDF" and source["chunkCount"] == 1 and source["characters"] > 20
    hits = await _search(inbox, "how long is storage free at the warehouse")
    assert hits[0]["source"]["id"] == source["id"]
    assert "Bhiwandi" in hits[0]["text"]
    # a PDF source without a file names the field
    result = await inbox.gql(CREATE, {"input": {"kind": "PDF", "title": "x"}})
    assert result["data"]["knowledgeSourceCreate"]["userErrors"][0]["field"] == ["attachmentId"]


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE_HTML)

    async def big(request: Request) -> Response:
        return PlainTextResponse("x " * 2_000_000)

    async def missing(request: Request) -> Response:
        return PlainTextResponse("gone", status_code=404)

    app = Starlette(routes=[Route("/customs", page), Route("/big", big), Route("/missing", missing)])
    async with serve_in_loop(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_a_url_is_fetched_once_and_bad_urls_are_refused(inbox: Inbox, site: str, settings: Any) -> None:
    source = await _create(inbox, kind="URL", url=f"{site}/customs")
    assert (source["title"], source["url"]) == ("Customs help", f"{site}/customs")
    hits = await _search(inbox, "documents for import clearance")
    assert hits[0]["source"]["url"] == f"{site}/customs"
    for url, code in ((f"{site}/big", "TOO_LARGE"), (f"{site}/missing", "INVALID"), ("ftp://x/y", "INVALID")):
        payload = (await inbox.gql(CREATE, {"input": {"kind": "URL", "url": url}}))["data"]["knowledgeSourceCreate"]
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, ["url"])], url
    # without BANXWAY_ALLOW_PRIVATE_WEBHOOKS a private address is refused (the SSRF guard)
    guarded = settings.model_copy(update={"allow_private_webhooks": False})
    with pytest.raises(DomainError) as refused:
        await knowledge._fetch_url(guarded, f"{site}/customs")
    assert refused.value.field == ["url"]


async def test_deleting_a_source_removes_its_chunks(inbox: Inbox) -> None:
    source = await _create(inbox, kind="MARKDOWN", text=FAQ_MD)
    payload = await inbox.ok(DELETE, {"id": source["id"]}, "knowledgeSourceDelete")
    assert payload["deletedId"] == source["id"]
    assert await _search(inbox, "free time demurrage") == []
    async with system_session(inbox.api.state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(KnowledgeChunk)) == 0


# -- embeddings and hybrid ranking -------------------------------------------------------------------------------


async def test_with_an_embeddings_api_chunks_get_embeddings_and_ranking_is_hybrid(inbox: Inbox, settings: Any) -> None:
    async with openai_server() as standin:
        configured = settings.model_copy(
            update={
                "openai_api_key": standin.api_key,
                "openai_base_url": standin.base_url,
                "embeddings_model": "embed-standin",
            }
        )
        ctx = await _admin_context(inbox, configured)
        try:
            count = await load(ctx)
            # every source was embedded in one request with all of its chunks
            assert len(standin.embedding_requests) == count
            assert all(r.json["model"] == "embed-standin" for r in standin.embedding_requests)
            async with system_session(inbox.api.state.sessionmaker) as session:
                missing = await session.scalar(
                    select(func.count()).select_from(KnowledgeChunk).where(KnowledgeChunk.embedding.is_(None))
                )
            assert missing == 0
            # when searching, the query is embedded too, and the fused ranking still finds the right source
            hits = await knowledge.knowledge_search(ctx, "reefer containers temperature controlled", 3)
            assert len(standin.embedding_requests) == count + 1
            assert hits[0].source.title == "Container types and sizes"
            assert hits[0].score == pytest.approx(2 / 61)  # first in both rankings: 1/(60+1) twice
            # a question that shares no stem with any chunk is found by the embedding alone (hash of its words)
            only_vector = await knowledge.knowledge_search(ctx, "lithium", 1)
            assert only_vector[0].source.title == "Dangerous goods (hazardous cargo)"
            # and a failing embeddings API is reported on the field, nothing stored
            standin.fail_next(400, message="bad model")
            with pytest.raises(DomainError) as failed:
                await knowledge.knowledge_source_create(ctx, title="x", kind="TEXT", text="Some text.")
            assert failed.value.code == "AI_UNAVAILABLE"
        finally:
            await ctx.aclose()


async def test_fts_alone_needs_no_provider(inbox: Inbox) -> None:
    ctx = await _admin_context(inbox)
    try:
        await load(ctx)
        hits = await knowledge.knowledge_search(ctx, "reefer containers temperature controlled", 3)
        assert hits[0].source.title == "Container types and sizes"
        assert hits[0].chunk.embedding is None
    finally:
        await ctx.aclose()


# -- tenancy and roles -------------------------------------------------------------------------------------------


async def test_another_organizations_knowledge_is_never_retrieved_nor_deleted(inbox: Inbox) -> None:
    source = await _create(inbox, kind="MARKDOWN", text=FAQ_MD)
    other = await _foreign(inbox)
    assert await _search(other, "free time demurrage Nhava Sheva") == []
    assert (await other.gql(SOURCES))["data"]["knowledgeSources"] == []
    payload = (await other.gql(DELETE, {"id": source["id"]}))["data"]["knowledgeSourceDelete"]
    assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    assert (await _search(inbox, "free time demurrage"))[0]["source"]["id"] == source["id"]


async def test_support_cannot_manage_sources_but_may_search(inbox: Inbox) -> None:
    await _create(inbox, kind="MARKDOWN", text=FAQ_MD)
    support = await _member(inbox, "support")
    created = await inbox.gql(CREATE, {"input": {"kind": "TEXT", "text": "x", "title": "x"}}, support.token)
    assert created["data"] is None or created["data"]["knowledgeSourceCreate"] is None
    assert "may not" in str(created["errors"])
    listed = await inbox.gql(SOURCES, token=support.token)
    assert "errors" in listed
    assert (await _search(inbox, "reefer", token=support.token))[0]["source"]["title"] == "Shipping FAQ"
