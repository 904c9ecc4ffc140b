"""Trace-step scorers: the Classification step (label) and the Information Retrieval step
(evidence), and the full trace.

tracekd's definitions:
- label correct: the normalised predicted label equals the gold label;
- evidence: each predicted item is matched to context items by normalised exact text; precision,
  recall, F1 and exact-set match against the gold evidence ids; a tolerant match (token F1 >= 0.9
  against a context item) is reported beside it;
- anchor retrieved / answer-bearing fact retrieved: every anchor (answer-bearing) item of the
  decomposition is among the items matched; None when the example has none. Both are judged
  the same way under either evidence rule, so they separate "found the fact the question is
  conditioned on" from "copied the fact that states the answer";
- full trace correct: label correct and evidence exact set.

The paper's looser definitions (`paper_steps`) are kept under that name: label correct if the
gold label occurs in the first sentence of the trace; evidence correct under one of three named
rules (`PAPER_RULES`: the paper's stated rule, any context fact, the authors' code); outputs
without a `<think>` trace are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tracekd.data.schema import Example
from tracekd.score.normalize import normalize_item, normalize_label, token_f1, tokens
from tracekd.traces.render import Trace

TOLERANT_F1 = 0.9


def label_correct(pred: str | None, gold: str) -> bool:
    return pred is not None and normalize_label(pred) == normalize_label(gold)


@dataclass(frozen=True, slots=True)
class EvidenceScore:
    precision: float
    recall: float
    f1: float
    exact: bool
    matched: tuple[str, ...]  # context ids the predicted items matched (gold ones preferred)
    unmatched: int  # predicted items matching no context item

    def as_dict(self) -> dict[str, Any]:
        """The fields in order, `matched` as a list (JSON)."""
        return {**{name: getattr(self, name) for name in self.__slots__}, "matched": list(self.matched)}


def _match(item: str, ex: Example, gold: set[str], index: dict[str, list[str]], tolerant: bool) -> str | None:
    """The context id an evidence item refers to (a gold, anchor or answer-bearing one when
    several texts are equal)."""
    ids = index.get(normalize_item(item))
    if ids:
        return next((i for i in ids if i in gold), ids[0])
    if not tolerant:
        return None
    toks = tokens(item)
    scored = [(token_f1(toks, _tokens(c.text)), c.id in gold, c.id) for c in ex.context]
    best = max(scored, default=None)
    return best[2] if best is not None and best[0] >= TOLERANT_F1 else None


@lru_cache(maxsize=65536)
def _tokens(text: str) -> list[str]:
    return tokens(text)


@lru_cache(maxsize=4096)
def _index(context: tuple) -> dict[str, list[str]]:
    """Normalised item text -> context ids."""
    index: dict[str, list[str]] = {}
    for c in context:
        index.setdefault(normalize_item(c.text), []).append(c.id)
    return index


def evidence_score(pred: tuple[str, ...] | None, ex: Example, tolerant: bool = False) -> EvidenceScore:
    gold = set(ex.evidence)
    if pred is None:
        return EvidenceScore(0.0, 0.0, 0.0, False, (), 0)
    index = _index(ex.context)
    preferred = gold | set(ex.anchor) | set(ex.answer_facts)
    matched = [_match(p, ex, preferred, index, tolerant) for p in pred]
    hits = [m for m in matched if m is not None]
    unmatched = len(matched) - len(hits)
    hit_set = set(hits)
    precision = sum(m in gold for m in matched) / len(matched) if matched else float(not gold)
    recall = len(hit_set & gold) / len(gold) if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    exact = unmatched == 0 and hit_set == gold
    return EvidenceScore(precision, recall, f1, exact, tuple(dict.fromkeys(hits)), unmatched)


def retrieved(ev: EvidenceScore, ids: tuple[str, ...]) -> bool | None:
    """Every one of `ids` was cited (None when there are none to cite)."""
    return set(ids) <= set(ev.matched) if ids else None


def score_steps(parsed: Trace, ex: Example) -> dict[str, Any]:
    lab = label_correct(parsed.label, ex.label)
    ev = evidence_score(parsed.evidence, ex)
    tol = evidence_score(parsed.evidence, ex, tolerant=True)
    return {
        "label_correct": lab,
        "evidence": ev.as_dict(),
        "evidence_tolerant": tol.as_dict(),
        "anchor_retrieved": retrieved(ev, ex.anchor),
        "answer_fact_retrieved": retrieved(ev, ex.answer_facts),
        "trace_correct": lab and ev.exact,
    }


#: the paper-definitions evidence rules, the primary one first (docs/scoring.md, "The paper's evidence rules")
PAPER_RULES = ("stated", "any-fact", "authors-code")


def paper_trace(output: str) -> str | None:
    """The trace the paper's code judged: the output up to its first `</think>`; None where it
    did not evaluate the output (no "think" in it, or nothing before `</think>`)."""
    if "think" not in output:
        return None
    trace = output.split("</think>")[0]
    return trace or None


def paper_steps(output: str, ex: Example) -> dict[str, Any] | None:
    """The paper's definitions; None when the paper's code would not evaluate the output. The
    label: the gold label occurs in the trace's first sentence. The evidence, under each rule
    (`by_rule`; the primary one, `stated`, gives `evidence_correct`):
    - `stated`: the paper's stated rule - a gold evidence fact occurs verbatim in the trace (for
      CoTempQA under its `paper` evidence rule, a fact that contains a gold answer);
    - `any-fact`: any context fact occurs verbatim in the trace (what tracekd read from the paper
      before; nearly every trace that cites anything passes);
    - `authors-code`: the authors' `get_confusion_matrices`, set by `authors_code_steps` where their
      test CSV is given (`tracekd rescore --authors-csv`)."""
    trace = paper_trace(output)
    if trace is None:
        return None
    lab = ex.label in trace.split(".")[0]
    gold = ex.texts(ex.evidence)
    rules = {
        "stated": any(f in trace for f in gold),
        "any-fact": any(c.text in trace for c in ex.context),
    }
    return {
        "label_correct": lab,
        "evidence_correct": rules["stated"],
        "trace_correct": lab and rules["stated"],
        "by_rule": {k: {"evidence_correct": v, "trace_correct": lab and v} for k, v in rules.items()},
    }


_CATEGORIES = ("during", "equal", "overlap", "mix")  # the order the authors' get_gold_category tries them


def authors_code_steps(output: str, gold_first: str, csv_rows: list[dict[str, str]], previous: dict | None):
    """A faithful port of the authors' `get_confusion_matrices` (Trace_Check_QA,
    scripts/cotempqa_confusion_matrix.py) for one output; returns (steps or None, the CSV row used).

    Its quirks, kept: (1) the gold row is the FIRST row of the subset's test CSV whose `answer` cell
    (a list written as text) contains the record's first gold answer as a substring - often another
    question's row; when no row matches, the previous output's row is used again; (2) its
    `get_gold_facts` reads the answers from the facts column, so every fact "contains an answer"
    and all the row's facts are gold: the fact step is right when any of that row's facts occurs
    verbatim in the trace; (3) the category is the first of during / equal / overlap / mix found in
    the row's `reasoning` text, right when it occurs in the trace's first sentence."""
    import ast

    row = next((r for r in csv_rows if gold_first in r["answer"]), previous)
    trace = paper_trace(output)
    if trace is None or row is None:
        return None, row
    facts = ast.literal_eval(row["facts"]) if row.get("facts") else []
    category = next((c for c in _CATEGORIES if c in row["reasoning"]), None)
    lab = category is not None and category in trace.split(".")[0]
    fact = any(f in trace for f in facts)
    return {"evidence_correct": fact, "trace_correct": lab and fact, "label_correct": lab}, row
