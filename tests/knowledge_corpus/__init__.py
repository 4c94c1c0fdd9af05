"""A small knowledge base of a freight forwarder (the Markdown files here) and questions with the source that
answers each (questions.json; a null source: the knowledge base does not hold the answer and the agent should hand
over): `load` adds the sources to an organization through knowledgeSourceCreate's
use-case, `evaluate` asks every question the way the AI agent does and scores the source its answer cites.

Used by tests/test_ai_agent.py (precision floor) and bench/agent.py (prints the numbers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from banxway.context import Context
from banxway.resolvers.knowledge import knowledge_source_create, retrieve

HERE = Path(__file__).parent
QUESTIONS: list[dict[str, str]] = json.loads((HERE / "questions.json").read_text())


@dataclass(frozen=True)
class Result:
    question: str
    expected: str | None
    cited: str | None  # the source the answer cites; None: the agent would hand over
    confidence: float


async def load(ctx: Context) -> int:
    for path in sorted(HERE.glob("*.md")):
        await knowledge_source_create(ctx, title=None, kind="MARKDOWN", text=path.read_text())
    return len(list(HERE.glob("*.md")))


async def evaluate(ctx: Context, min_confidence: float = 0.35) -> list[Result]:
    results = []
    for item in QUESTIONS:
        hits, _ = await retrieve(ctx.db.session, ctx.settings, item["question"], 3)
        top = hits[0] if hits else None
        answered = top is not None and top.confidence >= min_confidence
        results.append(
            Result(
                item["question"],
                item["source"],
                top.source.title if answered and top else None,
                top.confidence if top else 0.0,
            )
        )
    return results


def precision_at_1(results: list[Result]) -> float:
    """Among the questions the knowledge base answers, the share whose answer cites the expected source (a handover
    counts as a miss)."""
    answerable = [r for r in results if r.expected is not None]
    return sum(1 for r in answerable if r.cited == r.expected) / len(answerable)


def handover_accuracy(results: list[Result]) -> float:
    """Among the questions the knowledge base does not answer, the share the agent hands over."""
    unanswerable = [r for r in results if r.expected is None]
    return sum(1 for r in unanswerable if r.cited is None) / len(unanswerable)
