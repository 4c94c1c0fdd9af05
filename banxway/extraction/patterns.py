"""The regular-expression helper the rule tables share: an alternation of words and phrases."""

from __future__ import annotations

import re
from collections.abc import Iterable


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(word).replace(r"\ ", r"[ \t]+") for word in sorted(words, key=len, reverse=True))
