"""Benchmark: the AI agent's answer-source precision@1 on the test corpus (tests/knowledge_corpus/), built-in path.

    uv run python bench/agent.py
    uv run python bench/agent.py --min-confidence 0.5 --show

Loads the corpus's Markdown sources into a fresh organization (knowledgeSourceCreate's use-case: chunking and
full-text vectors) in an embedded PostgreSQL under .bench-data/agent/ (or the server in DATABASE_URL, database
banxway_bench_agent), asks every question the way the agent does (retrieval, then the confidence threshold) and
prints the share of questions whose answer cites the expected source (a handover counts as a miss), the handover
rate and the retrieval latency. With OPENAI_API_KEY and BANXWAY_EMBEDDINGS_MODEL set, retrieval is hybrid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway.context import Context, Viewer  # noqa: E402
from banxway.db.migrate import upgrade  # noqa: E402
from banxway.db.session import create_engine  # noqa: E402
from banxway.embedded import EmbeddedPostgres  # noqa: E402
from banxway.enums import Role  # noqa: E402
from banxway.settings import Settings  # noqa: E402
from banxway.state import new_state  # noqa: E402
from tests.knowledge_corpus import QUESTIONS, evaluate, handover_accuracy, load, precision_at_1  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)
DATABASE = "banxway_bench_agent"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _organization(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A fresh organization and its admin (the previous run's is removed)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute("DELETE FROM organizations WHERE slug = 'bench-agent'")
        org, admin = uuid.uuid4(), uuid.uuid4()
        await conn.execute("INSERT INTO organizations (id, name, slug) VALUES ($1, 'Bench Agent', 'bench-agent')", org)
        await conn.execute(
            "INSERT INTO users (id, organization_id, email, name, role, password_hash) "
            "VALUES ($1, $2, 'admin@bench.test', 'Admin', 'admin', 'x')",
            admin,
            org,
        )
        return org, admin
    finally:
        await conn.close()


async def run(url: str, args: argparse.Namespace) -> None:
    org, admin = await _organization(url)
    settings = Settings(database_url=url, redis_url="redis://127.0.0.1:1/0")  # Redis is not used here
    state = new_state(settings)
    ctx = Context(state, viewer_or_none=Viewer(admin, org, Role.ADMIN, "admin@bench.test", "Admin"))
    try:
        began = time.perf_counter()
        sources = await load(ctx)
        loaded = time.perf_counter() - began
        timings = []
        results = []
        for _ in range(args.runs):
            began = time.perf_counter()
            results = await evaluate(ctx, args.min_confidence)
            timings.append((time.perf_counter() - began) / len(QUESTIONS))
    finally:
        await ctx.aclose()
        await state.engine.dispose()
        await state.reads.dispose()
    retrieval = "hybrid (FTS + embeddings)" if settings.embeddings_model and settings.openai_api_key else "FTS"
    console.print(f"corpus: {sources} sources, {len(QUESTIONS)} questions; loaded in {loaded * 1000:.0f} ms")
    if args.show:
        table = Table("question", "expected", "cited", "confidence")
        for r in results:
            mark = "" if r.cited == r.expected else "[red]"
            expected = r.expected or "(handover)"
            table.add_row(r.question, expected, f"{mark}{r.cited or '(handover)'}", f"{r.confidence:.2f}")
        console.print(table)
    handovers = sum(1 for r in results if r.cited is None and r.expected is not None) / len(results)
    console.print(
        f"retrieval: {retrieval}; min confidence {args.min_confidence}\n"
        f"answer-source precision@1 (answerable questions): {precision_at_1(results):.2f}\n"
        f"handed over when the knowledge base has no answer: {handover_accuracy(results):.2f}\n"
        f"answerable questions handed over: {handovers:.2f}\n"
        f"retrieval per question: {statistics.median(timings) * 1000:.1f} ms (median of {args.runs} runs)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-confidence", type=float, default=0.35, help="the agent's handover threshold")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--show", action="store_true", help="print every question's outcome")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench-data" / "agent")
    args = parser.parse_args()

    os.environ.setdefault("BANXWAY_SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnop")
    embedded = None
    url = os.environ.get("DATABASE_URL")
    if url:
        admin = await asyncpg.connect(_dsn(url))
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.close()
        url = make_url(url).set(database=DATABASE).render_as_string(hide_password=False)
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedPostgres(args.data_dir / "postgres")
        url = embedded.start()
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        await run(url, args)
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
