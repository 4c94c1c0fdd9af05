"""Benchmark: the rule-based message analyser (banxway.extraction) against the labelled corpus.

    uv run python bench/extract.py                 # the table; exit 1 when a target is missed
    uv run python bench/extract.py --misses        # and every wrong label, message by message
    uv run python bench/extract.py --repeat 50 --json

Runs `analyse` over every message of tests/extraction_corpus/ (see its README.md) with the message's own
reference date, and compares with the labels: precision and recall per entity kind (an entity matches a label
of the same kind, value, source and text as written; each label matches once), intent, sentiment and language
accuracy, and the messages analysed per second (best of --repeat passes over the corpus, in this process).
The same numbers are then shown for the held-out split alone: messages written after the rules were frozen and
never used to tune them, the fairer estimate of how the rules do on unseen mail.

Targets (the exit status, over the whole corpus): container and AWB precision 1.0 and recall >= 0.95, intent
accuracy >= 0.8. The other numbers are reported as they are.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway.enums import EntityKind  # noqa: E402
from banxway.extraction import ANALYSER_VERSION, Analysis, analyse  # noqa: E402

CORPUS = ROOT / "tests" / "extraction_corpus"
# (what, floor): precision/recall of a kind, or an accuracy
TARGETS: dict[tuple[str, str], float] = {
    ("CONTAINER", "precision"): 1.0,
    ("CONTAINER", "recall"): 0.95,
    ("AWB", "precision"): 1.0,
    ("AWB", "recall"): 0.95,
    ("intent", "accuracy"): 0.8,
}


def load_corpus(folder: Path = CORPUS) -> list[dict[str, Any]]:
    """The labelled messages, in file-name order; `body` joined back from its lines."""
    messages = []
    for path in sorted(folder.glob("*.json")):
        message = json.loads(path.read_text(encoding="utf-8"))
        message["body"] = "\n".join(message["body"])
        message["reference_date"] = date.fromisoformat(message["reference_date"])
        messages.append(message)
    return messages


def analyse_message(message: dict[str, Any]) -> Analysis:
    return analyse(message["body"], message["subject"], reference_date=message["reference_date"])


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Report:
    messages: int = 0
    kinds: dict[str, Counts] = field(default_factory=lambda: {kind.value: Counts() for kind in EntityKind})
    correct: collections.Counter[str] = field(default_factory=collections.Counter)
    misses: list[str] = field(default_factory=list)
    per_second: float = 0.0

    def accuracy(self, what: str) -> float:
        return self.correct[what] / self.messages if self.messages else 0.0

    def value(self, what: str, measure: str) -> float:
        if measure == "accuracy":
            return self.accuracy(what)
        return getattr(self.kinds[what], measure)

    def failures(self) -> list[str]:
        return [
            f"{what} {measure} {self.value(what, measure):.3f} < {floor}"
            for (what, measure), floor in TARGETS.items()
            if self.value(what, measure) < floor
        ]


def score(corpus: list[dict[str, Any]], analyses: list[Analysis]) -> Report:
    report = Report(messages=len(corpus))
    for message, analysis in zip(corpus, analyses, strict=True):
        for what, got in (
            ("intent", analysis.intent.value),
            ("sentiment", analysis.sentiment.value),
            ("language", analysis.language),
        ):
            if got == message[what]:
                report.correct[what] += 1
            else:
                report.misses.append(f"{message['id']}: {what} {got} (label {message[what]})")
        expected = collections.Counter(
            (label["kind"], label["value"], label["source"], label["text"]) for label in message["entities"]
        )
        found = collections.Counter((e.kind.value, e.value, e.source, e.text) for e in analysis.entities)
        for key in expected | found:
            counts = report.kinds[key[0]]
            matched = min(expected[key], found[key])
            counts.tp += matched
            counts.fn += expected[key] - matched
            counts.fp += found[key] - matched
            if expected[key] > matched:
                report.misses.append(f"{message['id']}: missed {key}")
            if found[key] > matched:
                report.misses.append(f"{message['id']}: spurious {key}")
    return report


def run(corpus: list[dict[str, Any]], repeat: int = 1) -> Report:
    best = float("inf")
    analyses: list[Analysis] = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        analyses = [analyse_message(message) for message in corpus]
        best = min(best, time.perf_counter() - started)
    report = score(corpus, analyses)
    report.per_second = len(corpus) / best if best > 0 else float("inf")
    return report


def as_json(report: Report) -> dict[str, Any]:
    return {
        "analyser": ANALYSER_VERSION,
        "messages": report.messages,
        "entities": {
            kind: {"precision": round(c.precision, 3), "recall": round(c.recall, 3), "tp": c.tp, "fp": c.fp, "fn": c.fn}
            for kind, c in report.kinds.items()
        },
        "intent_accuracy": round(report.accuracy("intent"), 3),
        "sentiment_accuracy": round(report.accuracy("sentiment"), 3),
        "language_accuracy": round(report.accuracy("language"), 3),
        "messages_per_s": round(report.per_second),
        "failures": report.failures(),
    }


def print_table(report: Report, title: str) -> None:
    print(title)
    print(f"  {'entity':<16}{'precision':>10}{'recall':>8}{'tp':>6}{'fp':>5}{'fn':>5}   target")
    for kind, c in report.kinds.items():
        floors = [f"{measure[0]}>={floor}" for (what, measure), floor in TARGETS.items() if what == kind]
        print(f"  {kind:<16}{c.precision:>10.3f}{c.recall:>8.3f}{c.tp:>6}{c.fp:>5}{c.fn:>5}   {' '.join(floors)}")
    for what in ("intent", "sentiment", "language"):
        floor = TARGETS.get((what, "accuracy"))
        target = f">={floor}" if floor is not None else ""
        accuracy = report.accuracy(what)
        print(f"  {what + ' accuracy':<26}{accuracy:>8.3f}   ({report.correct[what]}/{report.messages}) {target}")
    if report.per_second:
        print(f"  {'throughput':<26}{report.per_second:>8.0f}   messages/s (one core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over the corpus for the timing (best one)")
    parser.add_argument("--misses", action="store_true", help="list every wrong label")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = parser.parse_args()
    corpus = load_corpus()
    report = run(corpus, args.repeat)
    holdout = [message for message in corpus if message.get("split") == "holdout"]
    held = score(holdout, [analyse_message(message) for message in holdout])
    if args.json:
        print(
            json.dumps(
                {
                    **as_json(report),
                    "holdout": {k: v for k, v in as_json(held).items() if k not in ("failures", "messages_per_s")},
                }
            )
        )
    else:
        where = CORPUS.relative_to(ROOT)
        print_table(report, f"message analyser {ANALYSER_VERSION}, {report.messages} labelled messages ({where})")
        failures = report.failures()
        print("  targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
        print()
        print_table(held, f"held-out split only ({held.messages} messages, never used to tune the rules)")
        if args.misses:
            print("\n".join(["", "misses:", *(f"  {miss}" for miss in report.misses)]))
    if report.failures():
        sys.exit(1)


if __name__ == "__main__":
    main()
