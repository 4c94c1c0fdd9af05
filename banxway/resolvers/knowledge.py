"""The knowledge base the AI agent answers from: sources (typed text, Markdown, HTML, an uploaded PDF, a web page
fetched once), cut into chunks of about 800 characters (banxway.extraction.chunking), and retrieval.

Retrieval: PostgreSQL full-text search (`english` configuration, GIN index) finds candidates whose words any of
the question's words match; each is scored by how much of the question it covers, every word weighed by its rarity
among the organization's chunks (an IDF-weighted coverage, 0..1, which is also the answer's *confidence*). With
BANXWAY_EMBEDDINGS_MODEL and OPENAI_API_KEY, chunks get embeddings at ingestion and the question one at search; the
cosine ranking and the full-text ranking are fused by reciprocal rank fusion (k = 60), and the confidence is the
larger of the coverage and the cosine. Everything is scoped to the viewer's organization.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select

from banxway.auth import Permission
from banxway.db.models import Attachment, KnowledgeChunk, KnowledgeSource
from banxway.errors import DomainError
from banxway.extraction.chunking import chunk_text, html_to_text, markdown_to_text, normalise
from banxway.integrations import network
from banxway.integrations.ai import AIError
from banxway.integrations.ai.knowledge import cosine, embed
from banxway.integrations.pdf_text import read_text
from banxway.integrations.storage import attachment_path
from banxway.logs import get_logger
from banxway.resolvers import ai_budget
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbox_events import to_global_id

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context
    from banxway.settings import Settings


log = get_logger("banxway.knowledge")

KINDS = ("TEXT", "MARKDOWN", "HTML", "PDF", "URL")
MAX_TEXT = 500_000  # characters of a source's text
MAX_PDF_PAGES = 200
URL_TIMEOUT = 10.0
RRF_K = 60


# -- sources ---------------------------------------------------------------------------------------------------


async def knowledge_sources(ctx: Context) -> list[KnowledgeSource]:
    ctx.require(Permission.ORG_MANAGE)
    return list(await ctx.db.scalars(select(KnowledgeSource).order_by(KnowledgeSource.created_at, KnowledgeSource.id)))


async def _fetch_url(settings: Settings, url: str) -> tuple[str, str | None]:
    """(the page's text, its title) — fetched once through the SSRF guard, with a timeout and a size cap."""
    public_only = not settings.allow_private_webhooks
    if public_only and await network.private_address(url):
        raise DomainError("INVALID", "The URL is on a private network address.", "url")
    cap = settings.knowledge_url_max_bytes
    try:
        async with (
            httpx.AsyncClient(
                transport=network.transport(public_only=public_only), timeout=URL_TIMEOUT, follow_redirects=False
            ) as client,
            client.stream("GET", url, headers={"accept": "text/html, text/plain, text/markdown"}) as response,
        ):
            if response.status_code != 200:
                raise DomainError("INVALID", f"Fetching the URL answered HTTP {response.status_code}.", "url")
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > cap:
                    raise DomainError("TOO_LARGE", f"The page is larger than {cap} bytes.", "url")
            content_type = response.headers.get("content-type", "").lower()
            encoding = response.encoding or "utf-8"
    except httpx.HTTPError as exc:
        raise DomainError("INVALID", f"The URL could not be fetched: {exc.__class__.__name__}.", "url") from exc
    text = bytes(body).decode(encoding, errors="replace")
    if "html" in content_type or re.search(r"<html|<body|<p\b", text[:2000], re.IGNORECASE):
        return html_to_text(text)
    if "markdown" in content_type:
        return markdown_to_text(text), None
    if content_type.startswith("text/") or not content_type:
        return normalise(text), None
    raise DomainError("INVALID", f"A URL source must be a web page or text, not {content_type}.", "url")


async def _attachment_text(ctx: Context, attachment_id: uuid.UUID | None) -> tuple[str, Attachment]:
    attachment = await get_or_error(ctx.db.session, Attachment, attachment_id, "attachmentId", label="attachment")
    path = attachment_path(ctx.settings.data_dir, attachment.sha256)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise DomainError("NOT_FOUND", "The attachment's file is missing.", "attachmentId") from exc
    result = await asyncio.to_thread(
        read_text, data, attachment.content_type, attachment.filename, max_pages=MAX_PDF_PAGES, max_chars=MAX_TEXT
    )
    if result.state != "EXTRACTED" or not result.text:
        raise DomainError("INVALID", result.error or "No text could be read from the attachment.", "attachmentId")
    return result.text, attachment


async def _source_text(ctx: Context, kind: str, text: str | None, attachment_id: uuid.UUID | None, url: str | None):
    """(plain text, a title found in it, the attachment used)."""
    attachment = None
    found_title = None
    if kind in ("TEXT", "MARKDOWN", "HTML") and attachment_id is None:
        raw = v.text(text, "text", max_length=MAX_TEXT, required=True) or ""
    elif kind in ("TEXT", "MARKDOWN", "HTML", "PDF"):
        if attachment_id is None:
            raise DomainError("INVALID", f"A {kind} source needs an attachmentId.", "attachmentId")
        raw, attachment = await _attachment_text(ctx, attachment_id)
    else:  # URL
        clean = v.text(url, "url", max_length=2000, required=True) or ""
        if urlsplit(clean).scheme not in ("http", "https") or not urlsplit(clean).hostname:
            raise DomainError("INVALID", "The URL must be an http(s) URL.", "url")
        raw, found_title = await _fetch_url(ctx.settings, clean)
        return raw, found_title, None
    if kind == "MARKDOWN":
        heading = re.search(r"^\s{0,3}#\s+(.+?)[\s#]*$", raw, re.MULTILINE)
        return markdown_to_text(raw), heading.group(1).strip() if heading else None, attachment
    if kind == "HTML":
        plain, found_title = html_to_text(raw)
        return plain, found_title, attachment
    return normalise(raw), None, attachment


def embeddings_configured(settings: Settings) -> bool:
    return bool(settings.embeddings_model and settings.openai_api_key)


async def _embed(settings: Settings, texts: list[str]) -> tuple[list[list[float]] | None, int]:
    if not embeddings_configured(settings):
        return None, 0
    assert settings.openai_api_key and settings.embeddings_model
    return await embed(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        model=settings.embeddings_model,
        texts=texts,
    )


async def knowledge_source_create(
    ctx: Context,
    *,
    title: str | None,
    kind: str,
    text: str | None = None,
    attachment_id: uuid.UUID | None = None,
    url: str | None = None,
) -> KnowledgeSource:
    """Add a source: its text read (a URL fetched now, once), chunked, and (when configured) embedded."""
    viewer = ctx.require(Permission.ORG_MANAGE)
    if kind not in KINDS:
        raise DomainError("INVALID", f"Unknown kind {kind!r}.", "kind")
    clean_title = v.text(title, "title", max_length=200)
    plain, found_title, attachment = await _source_text(ctx, kind, text, attachment_id, url)
    chunks = chunk_text(plain)
    if not chunks:
        raise DomainError("INVALID", "The source has no text.", "text" if kind != "URL" else "url")
    name = clean_title or found_title or (attachment.filename if attachment else None) or (url or "")[:200]
    if not name:
        raise DomainError("INVALID", "Give the source a title.", "title")
    try:
        vectors, spent = await _embed(ctx.settings, [f"{name}\n{chunk}" for chunk in chunks])
    except AIError as exc:
        raise DomainError("AI_UNAVAILABLE", f"The embeddings could not be computed: {exc.detail}", "kind") from exc
    async with ctx.transaction() as session:
        source = KnowledgeSource(
            organization_id=viewer.organization_id,
            title=name[:200],
            kind=kind,
            url=url.strip() if kind == "URL" and url else None,
            attachment_id=attachment.id if attachment else None,
            characters=len(plain),
            embedding_model=ctx.settings.embeddings_model if vectors else None,
            created_by_id=viewer.user_id,
        )
        session.add(source)
        await session.flush()
        session.add_all(
            KnowledgeChunk(
                organization_id=viewer.organization_id,
                source_id=source.id,
                position=index,
                title=source.title,
                text=chunk,
                embedding=vectors[index] if vectors else None,
            )
            for index, chunk in enumerate(chunks)
        )
        if spent:
            await ai_budget.charge(session, viewer.organization_id, spent, datetime.now(UTC))
        await audit_change(
            ctx,
            session,
            action="knowledgeSourceCreate",
            target=to_global_id("KnowledgeSource", source.id),
            after={"title": source.title, "kind": kind, "url": source.url, "chunks": len(chunks)},
        )
    return source


async def knowledge_source_delete(ctx: Context, source_id: uuid.UUID | None) -> uuid.UUID:
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        source = await get_or_error(session, KnowledgeSource, source_id, "id", lock=True, label="source")
        before = {"title": source.title, "kind": source.kind, "url": source.url}
        await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.source_id == source.id))
        await session.delete(source)
        await audit_change(
            ctx,
            session,
            action="knowledgeSourceDelete",
            target=to_global_id("KnowledgeSource", source.id),
            before=before,
        )
    return source.id


# -- retrieval -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: KnowledgeChunk
    source: KnowledgeSource
    score: float  # the ranking's (coverage, or the fused rank score with embeddings)
    confidence: float  # 0..1: how well the chunk covers the question


_QUERY_WORD = re.compile(r"[A-Za-z0-9]+")
# Words of a customer's message that say nothing of what is asked (greetings, courtesy, sign-offs): left out of
# the query, so that "Dear team, ... Regards" does not lower the confidence of a good match.
_FILLER_WORDS = (
    "hi hello hey dear team sir madam good morning afternoon evening regards best kind kindly thanks thank "
    "please pls cheers help know let tell want like would could question ask asking wondering update"
)
_FILLER = frozenset(_FILLER_WORDS.split())


async def _question_lexemes(session: AsyncSession, query: str) -> list[str]:
    words = " ".join(w for w in _QUERY_WORD.findall(query) if w.lower() not in _FILLER)[:2000]
    if not words:
        return []
    lexemes = await session.scalar(select(func.tsvector_to_array(func.to_tsvector("english", words))))
    return sorted(set(lexemes or []))


async def _full_text(session: AsyncSession, query: str, limit: int) -> list[tuple[KnowledgeChunk, float]]:
    lexemes = await _question_lexemes(session, query)
    if not lexemes:
        return []
    tsquery = func.to_tsquery("simple", " | ".join(f"'{lexeme}'" for lexeme in lexemes))
    rows = (
        await session.execute(
            select(KnowledgeChunk, func.tsvector_to_array(KnowledgeChunk.search))
            .where(KnowledgeChunk.search.op("@@")(tsquery))
            .order_by(func.ts_rank(KnowledgeChunk.search, tsquery, 1).desc())
            .limit(200)
        )
    ).all()
    if not rows:
        return []
    total = await session.scalar(select(func.count()).select_from(KnowledgeChunk)) or 1
    held = [set(words or []) for _, words in rows]
    weights = {
        lexeme: math.log((total + 1) / (sum(1 for words in held if lexeme in words) + 0.5)) + 0.1 for lexeme in lexemes
    }
    whole = sum(weights.values())
    scored = [
        (chunk, sum(weight for lexeme, weight in weights.items() if lexeme in words) / whole)
        for (chunk, _), words in zip(rows, held, strict=True)
    ]
    scored.sort(key=lambda item: -item[1])  # stable: ts_rank orders equals
    return scored[:limit]


async def _by_embedding(session: AsyncSession, vector: list[float], limit: int) -> list[tuple[KnowledgeChunk, float]]:
    chunks = list(await session.scalars(select(KnowledgeChunk).where(KnowledgeChunk.embedding.is_not(None))))
    scored = sorted(((c, cosine(vector, c.embedding or [])) for c in chunks), key=lambda item: -item[1])
    return scored[:limit]


async def retrieve(session: AsyncSession, settings: Settings, query: str, first: int = 5) -> tuple[list[Hit], int]:
    """The best chunks for `query` in the session's organization (see the module's docstring), and the tokens an
    embedding of the query cost."""
    text_hits = await _full_text(session, query, max(first, 20))
    vector_hits: list[tuple[KnowledgeChunk, float]] = []
    spent = 0
    if embeddings_configured(settings) and query.strip():
        has_vectors = await session.scalar(
            select(func.count()).select_from(KnowledgeChunk).where(KnowledgeChunk.embedding.is_not(None))
        )
        if has_vectors:
            vectors, spent = await _embed(settings, [query])
            if vectors:
                vector_hits = await _by_embedding(session, vectors[0], max(first, 20))
    coverage = {chunk.id: score for chunk, score in text_hits}
    similarity = {chunk.id: max(score, 0.0) for chunk, score in vector_hits}
    chunks = {chunk.id: chunk for chunk, _ in text_hits + vector_hits}
    if vector_hits:
        fused: dict[uuid.UUID, float] = {}
        for ranking in (text_hits, vector_hits):
            for rank, (chunk, _) in enumerate(ranking):
                fused[chunk.id] = fused.get(chunk.id, 0.0) + 1.0 / (RRF_K + rank + 1)
        order = sorted(fused, key=lambda chunk_id: -fused[chunk_id])
        scores = fused
    else:
        order = [chunk.id for chunk, _ in text_hits]
        scores = coverage
    order = order[:first]
    source_ids = {chunks[chunk_id].source_id for chunk_id in order}
    sources = {
        source.id: source
        for source in await session.scalars(select(KnowledgeSource).where(KnowledgeSource.id.in_(source_ids)))
    }
    hits = [
        Hit(
            chunk=chunks[chunk_id],
            source=sources[chunks[chunk_id].source_id],
            score=scores[chunk_id],
            confidence=max(coverage.get(chunk_id, 0.0), similarity.get(chunk_id, 0.0)),
        )
        for chunk_id in order
        if chunks[chunk_id].source_id in sources
    ]
    return hits, spent


async def knowledge_search(ctx: Context, query: str, first: int = 5) -> list[Hit]:
    """knowledgeSearch: what the agent would retrieve for `query`."""
    ctx.require(Permission.MESSAGE_SEND)
    clean = v.text(query, "query", max_length=2000, required=True) or ""
    if not 1 <= first <= 50:
        raise DomainError("INVALID", "first must be 1 to 50.", "first")
    try:
        hits, spent = await retrieve(ctx.db.session, ctx.settings, clean, first)
    except AIError as exc:
        raise DomainError("AI_UNAVAILABLE", f"The search could not embed the query: {exc.detail}", "query") from exc
    if spent:
        async with ctx.transaction() as session:
            await ai_budget.charge(session, ctx.viewer.organization_id, spent, datetime.now(UTC))
    return hits


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "chunkId": str(hit.chunk.id),
        "sourceId": str(hit.source.id),
        "title": hit.source.title,
        "url": hit.source.url,
        "confidence": round(hit.confidence, 3),
    }
