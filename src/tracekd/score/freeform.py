"""Scoring free-form traces (a teacher's reasoning, a student trained on it): which context items
the trace cites, and whether it states the gold label (the relation / task type).

A trace **cites** a context item when one of its sentences states that item's content:
- CoTempQA-shaped facts ("S holds the position of O from 1990 to 1995."): the fact's entities that
  tell it apart (subject and object, less any entity every fact of the example shares), each
  found by fuzzy matching (rapidfuzz `partial_ratio` >= `ENTITY_MATCH`), and every year of its time;
- bAbI sentences: every content word (fuzzy, `WORD_MATCH`), the interchangeable verbs of a class
  ("went", "moved", "journeyed", "travelled") counting as one;
- anything else (MS MARCO passages): every content word for a short item; for a long one, a
  sentence of it quoted (`partial_ratio` >= `QUOTE_MATCH`).
When one sentence states several items with the same content, only the closest in wording
(`fuzz.partial_ratio`, then `fuzz.ratio`) counts ("Jeff gave the football to Bill" is not "Bill gave the football to Jeff"),
and an item whose content is part of another's found there does not count ("Sandra is in the
kitchen" inside "Sandra is not in the kitchen").

A trace **states** a label when a phrase of its dataset's lexicon (`Dataset.label_lexicon`, in
the dataset's own module) occurs in it, except inside the dataset's question wording
(`Dataset.label_neutral`: "during the same time period" states no relation) or where it only repeats the question. The predicted label is the gold one when the trace states it,
else the first other label it states, else none.

`freeform_trace` turns an output into the parser's `Trace` (label, cited item texts, answers), so
free-form traces get exactly the step scores, 2x2 tables and findings of rule-based ones.
Thresholds and their measured agreement: docs/scoring.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from tracekd.data.base import LABEL_SENTENCE_CATEGORY, REGISTRY, Dataset
from tracekd.data.cotempqa import parse_fact
from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace
from tracekd.traces.teacher import split_reasoning

WORD_MATCH = 85.0  # fuzz.ratio of two words (>= 5 letters; shorter words and numbers match exactly)
ENTITY_MATCH = 90.0  # fuzz.partial_ratio of a multi-word entity against a sentence
QUOTE_MATCH = 90.0  # fuzz.partial_ratio of a passage sentence against a trace sentence
LONG_ITEM = 30  # items with more content words are matched by quotation

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "of",
        "in",
        "on",
        "at",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "and",
        "or",
        "that",
        "this",
        "these",
        "those",
        "there",
        "then",
        "it",
        "its",
        "he",
        "she",
        "they",
        "him",
        "her",
        "them",
        "his",
        "their",
        "i",
        "you",
        "we",
        "for",
        "from",
        "by",
        "with",
        "as",
        "into",
        "also",
        "after",
        "afterwards",
        "following",
        "back",
        "up",
        "down",
        "either",
    ]
)
#: interchangeable verbs: a fact's verb is matched by any verb of its class
_VERB_CLASSES = {
    "go": (
        "moved",
        "move",
        "moves",
        "went",
        "go",
        "goes",
        "gone",
        "going",
        "journeyed",
        "journey",
        "journeys",
        "travelled",
        "traveled",
        "travel",
        "travels",
    ),
    "get": (
        "got",
        "get",
        "gets",
        "grabbed",
        "grab",
        "grabs",
        "picked",
        "pick",
        "picks",
        "took",
        "take",
        "takes",
        "taken",
    ),
    "drop": ("dropped", "drop", "drops", "discarded", "discard", "discards", "put", "puts", "left", "leave", "leaves"),
    "give": ("gave", "give", "gives", "given", "handed", "hand", "hands", "passed", "pass", "passes"),
}
_VERB = {w: c for c, ws in _VERB_CLASSES.items() for w in ws}

_YEAR = re.compile(r"\b\d{4}\b")
_ABBREV_END = re.compile(
    r"(?:^|[^A-Za-z0-9])(?:(?:[A-Z]\.)+|Jr\.|Sr\.|St\.|Dr\.|Mr\.|Mrs\.|Ms\.|Inc\.|Co\.|Ltd\.|No\.)$"
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|['\"]\s*,\s*['\"]|\[\s*['\"]|['\"]\s*\]")


@lru_cache(maxsize=65536)
def norm(text: str) -> str:
    """Case and accents folded, every non-alphanumeric run one space."""
    t = unicodedata.normalize("NFKD", text.casefold())
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", t).split())


def sentences(text: str) -> list[str]:
    """Sentences and lines of a trace (and the items of a Python list); an initial such as
    "Thomas F." or "Carnoustie F.C." does not end a sentence."""
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        if out and _ABBREV_END.search(out[-1]):
            out[-1] += " " + part
        else:
            out.append(part)
    return [s for s in (norm(p) for p in out) if s]


# -- items ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """What a trace must say to cite one context item."""

    id: str
    text: str  # normalised
    entities: tuple[str, ...] = ()  # multi-word names, fuzzy partial match
    words: tuple[str, ...] = ()  # single words ("@go" is a verb class)
    years: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()  # long items: sentences, one of which must be quoted


def _content_words(text: str) -> tuple[str, ...]:
    """Content words in order, repeats kept ("the box fits inside the box" needs two boxes)."""
    return tuple("@" + _VERB[w] if w in _VERB else w for w in norm(text).split() if w not in _STOP)


def _items(ex: Example) -> list[Item]:
    parsed = {c.id: parse_fact(c) for c in ex.context}
    facts = {k: f for k, f in parsed.items() if f is not None}
    if ex.context and len(facts) == len(parsed):
        shared = (
            {
                e
                for e in {norm(f.subj) for f in facts.values()} | {norm(f.obj) for f in facts.values()}
                if all(e in (norm(f.subj), norm(f.obj)) for f in facts.values())
            }
            if len(ex.context) > 1
            else set()
        )
        out = []
        for c in ex.context:
            f = facts[c.id]
            ents = tuple(e for e in dict.fromkeys((norm(f.subj), norm(f.obj))) if e not in shared)
            out.append(Item(c.id, norm(c.text), entities=ents, years=tuple(_YEAR.findall(c.text.split(f.obj)[-1]))))
        return out
    words = {c.id: _content_words(c.text) for c in ex.context}
    out = []
    for c in ex.context:
        if len(words[c.id]) > LONG_ITEM:
            out.append(Item(c.id, norm(c.text), quotes=tuple(s for s in sentences(c.text) if len(s.split()) >= 6)))
        else:
            out.append(Item(c.id, norm(c.text), words=words[c.id]))
    return out


def _words_in(words: tuple[str, ...], tokens: list[str]) -> bool:
    """Each word matches its own token of the sentence: exact matches first, then fuzzy ones
    (`WORD_MATCH`, words of 5+ letters); a verb class matches any verb of the class."""
    free = list(tokens)
    fuzzy = []
    for w in words:
        if w.startswith("@"):
            hit = next((i for i, t in enumerate(free) if _VERB.get(t) == w[1:]), None)
        else:
            hit = next((i for i, t in enumerate(free) if t == w), None)
        if hit is None:
            if w.startswith("@") or w.isdigit() or len(w) < 5:
                return False
            fuzzy.append(w)
        else:
            free.pop(hit)
    for w in fuzzy:
        best = process.extractOne(w, free, scorer=fuzz.ratio, score_cutoff=WORD_MATCH)
        if best is None:
            return False
        free.pop(best[2])
    return True


def _states(item: Item, sent: str, tokens: list[str]) -> bool:
    if item.quotes:
        return any(fuzz.partial_ratio(q, sent) >= QUOTE_MATCH for q in item.quotes if len(sent) >= 0.5 * len(q))
    if not all(y in tokens for y in item.years):
        return False
    for e in item.entities:
        if (" " in e or len(e) >= 5) and len(sent) >= len(e):
            if fuzz.partial_ratio(e, sent) < ENTITY_MATCH:
                return False
        elif e not in tokens:
            return False
    return _words_in(item.words, tokens) and bool(item.entities or item.words or item.years)


def _part_of(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Every unit of `a` is a unit of `b` (or close to one, as words are matched), or a whole-word
    part of one (as a multiset), and `a` is not `b`."""
    if a == b:
        return False
    rest = list(b)
    for u in a:
        hit = next(
            (
                i
                for i, v in enumerate(rest)
                if u == v or f" {u} " in f" {v} " or (len(u) >= 5 and fuzz.ratio(u, v) >= WORD_MATCH)
            ),
            None,
        )
        if hit is None:
            return False
        rest.pop(hit)
    return True


def cited(trace: str, ex: Example) -> list[str]:
    """Ids of the context items the trace states, in context order."""
    items = _items(ex)
    found: dict[str, None] = {}
    for sent in sentences(trace):
        tokens = sent.split()
        hits = [it for it in items if _states(it, sent, tokens)]
        units = {it.id: tuple(sorted((*it.entities, *it.words, *it.years))) for it in hits}
        # an item whose content is part of another's found in the same sentence is not cited by it
        # ("Sandra is in the kitchen" inside "Sandra is not in the kitchen", "leader in 1742"
        # inside "Leader of the House of Commons from 1721 to 1742")
        hits = [it for it in hits if not any(_part_of(units[it.id], units[o.id]) for o in hits)]
        groups: dict[tuple[str, ...], list[Item]] = {}
        for it in hits:
            groups.setdefault(units[it.id], []).append(it)
        for group in groups.values():
            close = {it.id: (fuzz.partial_ratio(it.text, sent), fuzz.ratio(it.text, sent)) for it in group}
            best = max(close.values())
            found.update((it.id, None) for it in group if close[it.id] == best)
    order = {c.id: i for i, c in enumerate(ex.context)}
    return sorted(found, key=order.__getitem__)


# -- labels -----------------------------------------------------------------------------------------
def _dataset(ex: Example) -> type[Dataset]:
    if ex.dataset not in REGISTRY:
        raise InputError(f"example {ex.id!r} is of dataset {ex.dataset!r}, which is not registered")
    return REGISTRY[ex.dataset]


@lru_cache(maxsize=16)
def _label_patterns(dataset: type[Dataset]) -> tuple[tuple[str, re.Pattern], ...]:
    return tuple(
        (label, re.compile(r"\b(?:" + "|".join(re.escape(norm(p)) for p in phrases) + r")\b"))
        for label, phrases in dataset.label_lexicon.items()
    )


def stated_labels(trace: str, ex: Example) -> list[str]:
    """Labels the trace states, in order of first mention. A phrase that only repeats the question
    does not count, nor one inside a longer phrase found ("coreference" in "compound coreference")."""
    dataset = _dataset(ex)
    text = norm(trace)
    for phrase in dataset.label_neutral:
        text = re.sub(rf"\b{re.escape(norm(phrase))}\b", " ", text)
    text = " ".join(text.split())
    question = f" {norm(ex.question)} "
    words = text.split()
    spans = []
    for label, pattern in _label_patterns(dataset):
        for m in pattern.finditer(text):
            start = len(text[: m.start()].split())
            end = start + len(m.group(0).split())
            if f" {' '.join(words[max(0, start - 1) : end + 1])} " not in question:
                spans.append((m.start(), m.end(), label))
    first: dict[str, int] = {}
    for a, b, label in sorted(spans):
        if not any(x <= a and b <= y and (x, y) != (a, b) for x, y, _ in spans):
            first.setdefault(label, a)
    return list(first)


# -- the whole trace --------------------------------------------------------------------------------
_ANSWER_LINE = re.compile(r"^[ \t]*answer[ \t]*:.*$", re.I | re.M)


def trace_and_answer(output: str) -> tuple[str, str]:
    """The trace part and the answer part of an output: the reasoning block when there is one;
    else what precedes `<answer>` (the paper's form); else the output without its `answer:`
    lines (the tagged form; for free text, all of it is both)."""
    reasoning, rest = split_reasoning(output, None)
    if reasoning is not None:
        return reasoning, rest
    if "<answer>" in output:
        before, after = output.split("<answer>", 1)
        return before, "<answer>" + after
    return _ANSWER_LINE.sub("", output), output


def freeform_trace(output: str, ex: Example, label_sentence: str = LABEL_SENTENCE_CATEGORY) -> Trace:
    """The steps a free-form output takes, as the parser's Trace: the predicted label, the texts of
    the cited items, and the answers the parser finds in the answer part (`label_sentence`: the
    dataset's, which the parser needs to tell a label line from a bare answer)."""
    trace, answer = trace_and_answer(output)
    labels = stated_labels(trace, ex)
    label = ex.label if ex.label in labels else (labels[0] if labels else None)
    texts = {c.id: c.text for c in ex.context}
    return Trace(label, tuple(texts[i] for i in cited(trace, ex)), parse(answer, label_sentence).answers)
