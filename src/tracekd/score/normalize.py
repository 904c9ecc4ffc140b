"""Text normalisation shared by the scorers (SQuAD-style)."""

from __future__ import annotations

import re
import string

from tracekd.data.schema import normalize_item, unicode_text

__all__ = ["normalize_answer", "normalize_item", "normalize_label", "token_f1", "tokens"]

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Unicode NFC without zero-width characters, lower case, punctuation and articles removed,
    whitespace collapsed."""
    s = unicode_text(s).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def tokens(s: str) -> list[str]:
    return normalize_answer(s).split()


def normalize_label(s: str) -> str:
    return " ".join(unicode_text(s).casefold().replace("_", "-").split()).strip(" .'\"")


def token_f1(pred: list[str], gold: list[str]) -> float:
    """Token-level F1 between two token bags."""
    from collections import Counter

    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if not pred and not gold:
        return 1.0
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)
