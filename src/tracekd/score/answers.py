"""Answer scorers. Each dataset names one (`Dataset.answer_scorer`); `score_answer` runs it.

Every scorer returns a dict with `correct` (the binary answer correctness the association
statistics use) plus its own metrics. `@answer_scorer(name)` registers one (a new dataset with a
new way of judging answers adds its scorer here, or in its own module, by that decorator).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from tracekd.data import Dataset, Example
from tracekd.data.msmarco import NO_ANSWER
from tracekd.data.schema import unicode_text
from tracekd.errors import InputError
from tracekd.score.normalize import normalize_answer, token_f1, tokens

#: (predicted answers or None, the example, the raw output) -> scores with `correct`
AnswerScorer = Callable[[tuple[str, ...] | None, Example, str], dict[str, Any]]
SCORERS: dict[str, AnswerScorer] = {}


def answer_scorer(name: str) -> Callable[[AnswerScorer], AnswerScorer]:
    """Register an answer scorer under `name` (a name is taken once)."""

    def register(fn: AnswerScorer) -> AnswerScorer:
        if name in SCORERS:
            raise ValueError(f"an answer scorer named {name!r} is already registered")
        SCORERS[name] = fn
        return fn

    return register


def score_answer(ds: Dataset, answers: tuple[str, ...] | None, ex: Example, output: str) -> dict[str, Any]:
    """The dataset's scorer on one predicted answer list."""
    if ds.answer_scorer not in SCORERS:
        raise InputError(
            f"dataset {ds.name!r} names the answer scorer {ds.answer_scorer!r}, which is not registered; "
            f"registered: {', '.join(sorted(SCORERS))}"
        )
    # one spelling of the same text on both sides (NFC, no zero-width characters), for every scorer
    answers = None if answers is None else tuple(map(unicode_text, answers))
    gold = ex.replace(answers=tuple(map(unicode_text, ex.answers)), question=unicode_text(ex.question))
    output = unicode_text(output)
    scorer = SCORERS[ds.answer_scorer]
    scores = scorer(answers, gold, output)
    scores["lenient_correct"] = scores["correct"] or lenient_correct(scorer, answers, gold, output)
    return scores


# -- the lenient normalisation, reported beside the strict scorer (docs/scoring.md) -----------------
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
COMPASS = {"n": "north", "e": "east", "s": "south", "w": "west"}
_YES_NO_RE = re.compile(r"^\s*(yes|no)\b", re.I)
_CONJUNCTION_RE = re.compile(r"\s*(?:,\s*and\s+|\s+and\s+|,\s*)", re.I)


def _lenient_item(item: str) -> str:
    """One answer item: a leading yes / no is the answer ("Yes, it can." -> "yes"); a number word
    is its digits ("two" -> "2"); a compass abbreviation is the direction ("n" -> "north")."""
    m = _YES_NO_RE.match(item)
    if m:
        return m.group(1).lower()
    key = item.strip().strip(".").strip().lower()
    return NUMBER_WORDS.get(key) or COMPASS.get(key) or item


def lenient_answers(items: tuple[str, ...] | None, split: bool) -> tuple[str, ...] | None:
    """The items normalised leniently; `split`: a conjunction list ("X and Y", "X, Y") is its items."""
    if items is None:
        return None
    parts = [p for it in items for p in (_CONJUNCTION_RE.split(it) if split else [it]) if p.strip()]
    return tuple(_lenient_item(p) for p in parts)


def lenient_correct(scorer: AnswerScorer, answers: tuple[str, ...] | None, ex: Example, output: str) -> bool:
    """Right under the lenient normalisation: the dataset's own scorer on the predicted and gold
    answers normalised leniently, with and without splitting conjunction lists on both sides (a
    name with "and" in it is not split unless splitting makes the answer right)."""
    if answers is None:
        return False
    for split in (False, True):
        pred, gold = lenient_answers(answers, split), lenient_answers(ex.answers, split)
        if pred == answers and gold == ex.answers:
            continue  # nothing changed: the strict verdict stands
        if scorer(pred, ex.replace(answers=gold), output)["correct"]:
            return True
    return False


def set_scores(pred: tuple[str, ...] | None, gold: tuple[str, ...]) -> dict[str, Any]:
    """Strict set-level scores over normalised answer lists (CoTempQA, generic).

    em: the normalised sets are equal; p/r/f1: answer-level precision, recall and F1;
    token_f1: token F1 between all predicted and all gold answers.
    """
    g = {normalize_answer(a) for a in gold} - {""}
    p = {normalize_answer(a) for a in pred or ()} - {""}
    same = len(g & p)
    prec = same / len(p) if p else 0.0
    rec = same / len(g) if g else 0.0
    f1 = 2 * prec * rec / (prec + rec) if same else 0.0
    tok = token_f1([t for a in sorted(p) for t in a.split()], [t for a in sorted(g) for t in a.split()]) if p else 0.0
    return {
        "correct": bool(p) and p == g,
        "em": float(bool(p) and p == g),
        "p": prec,
        "r": rec,
        "f1": f1,
        "token_f1": tok,
    }


@answer_scorer("set")
def _set(answers: tuple[str, ...] | None, ex: Example, output: str) -> dict[str, Any]:
    return set_scores(answers, ex.answers)


# -- CoTempQA: the original scorer, ported line by line ---------------------------------------
# `evaluate_model` of the paper's code (sbhambr1/Trace_Check_QA, scripts/cotempqa_config.py in the
# version that produced the published evaluation_results; kept in scripts/old_scripts/) with
# mode="default". Every quirk below is deliberate: it is what makes the published numbers
# reproduce. The one change: candidates of equal length are tried in alphabetical order, where
# the original used set iteration order (which varies with PYTHONHASHSEED).
_UP_EXTRACT = {  # EXTRACT_TEMPLATES: P39's "in" pattern is listed twice there, harmless
    rel: tuple(
        re.compile(t.format(phrase))
        for t in (
            r"(.+?) {} (.+?) from (.+?) to (.+?)\.",
            r"(.+?) {} (.+?) in (.+?)\.",
            r"(.+?) {} (.+?) from (.+?)",
            r"(.+?) {} (.+?)\.",
        )
    )
    for rel, phrase in (
        ("P39", "holds the position of"),
        ("P102", "is a member of the"),
        ("P69", "attended"),
        ("P108", "works for"),
        ("P54", "plays for"),
        ("P488", "is the chair of"),
        ("P6", "is the head of"),
        ("P127", "is owned by"),
    )
}
_UP_REVERSE_SEARCH = (  # REVERSE_SEARCH, in its order
    (" the position of ", "P39"),
    (" a member of ", "P102"),
    (" the chair of ", "P488"),
    (" the head of ", "P6"),
    (" owned by ", "P127"),
    ("attend", "P69"),
    ("work", "P108"),
    ("play", "P54"),
)
_UP_PUNCT = frozenset(string.punctuation)


def _up_normalize(s: str) -> str:
    """The original `normalize_answer`: lower case, punctuation removed, whitespace collapsed
    (articles are kept, unlike SQuAD's)."""
    return " ".join("".join(ch for ch in s.lower() if ch not in _UP_PUNCT).split())


@lru_cache(maxsize=65536)
def _up_alternative(fact: str, is_subject: bool) -> str | None:
    """The subject (or object) the original extracts from one fact as a candidate answer.

    Quirks kept: the first keyword found rewrites the fact's tense (" was " -> " is ", ...) and
    the rewrite stays for the later keywords tried when no template of the first one matches;
    the keywords are plain substrings ("work" matches "network"); the patterns are `re.match`
    (anchored at the start only)."""
    for key, rel in _UP_REVERSE_SEARCH:
        if key in fact:
            fact = (
                fact.replace(" was ", " is ")
                .replace(" held ", " holds ")
                .replace(" worked ", " works ")
                .replace(" played ", " plays ")
            )
            for pattern in _UP_EXTRACT[rel]:
                m = pattern.match(fact)
                if m:
                    return (m.group(1) if is_subject else m.group(2)).lower()
    return None


def _up_answer_span(prediction: str) -> str:
    """What the original scores of the (lower-cased) prediction: one if/elif chain, then the words
    "assistant" and "think" deleted anywhere (so a gold "assistant professor" never matches)."""
    if "<answer>" in prediction:
        prediction = prediction.split("<answer>")[1]
        if "</answer>" in prediction:
            prediction = prediction.split("</answer>")[0]
    elif "answer the question based on" in prediction:
        prediction = prediction.split("answer the question based on")[0]
    elif " answer " in prediction:
        prediction = prediction.split(" answer ")[1]  # the text up to the next " answer ", not to the end
    elif "answer:" in prediction:
        prediction = prediction.split("answer:")[1]
    return prediction.replace("assistant", "").replace("think", "")


def cotempqa_upstream(
    output: str, gold: tuple[str, ...] | list[str], question: str, facts: list[str], triple_element: str | None
) -> dict[str, Any]:
    """One record scored as the original `evaluate_model` scores it.

    Give it the published record's own fields (`prediction`, `gold`, `question`, `facts`,
    `triple_element`), not cleaned copies: the original saw the raw strings."""
    golds = [a.lower() for a in gold]
    is_subject = "S2_R1_O1" not in (triple_element or "")
    prediction = _up_answer_span(output.lower())
    q = question.lower()
    alternatives = [c for c in (_up_alternative(f, is_subject) for f in facts) if c is not None] + golds
    # longest first, as the original; equal lengths alphabetically (the original: set order)
    candidates = sorted(set(alternatives), key=lambda a: (-len(a), a))
    shot = flag = False
    predict: list[str] = []
    for ans in candidates:
        if ans in prediction and ans in q and not flag:  # the first candidate also in the question is dropped
            prediction = prediction.replace(ans, "")
            flag = True
            continue
        if ans in prediction:
            predict.append(ans)
            prediction = prediction.replace(ans, "")
            shot = True
    if not shot:
        predict = [prediction]  # no candidate found: the whole remaining text is the prediction
    p_norm = sorted(_up_normalize(x) for x in set(predict))  # dedup before normalising, as the original
    g_norm = sorted(_up_normalize(x) for x in set(golds))
    em = p_norm == g_norm
    same = sum((Counter(p_norm) & Counter(g_norm)).values())
    if same == 0:
        prec = rec = f1 = 0.0
    else:
        prec, rec = same / len(p_norm), same / len(g_norm)
        f1 = 2 * prec * rec / (prec + rec)
    return {"correct": em, "acc": float(em), "f1": f1, "p": prec, "r": rec}


def upstream_totals(scores: list[dict[str, Any]]) -> dict[str, float]:
    """The five numbers `evaluate_model` reports for a file, summed in record order and rounded
    as it rounds them."""
    n = len(scores)
    em = sum(s["correct"] for s in scores)
    f1 = sum(s["f1"] for s in scores)
    return {
        "acc": round(em * 100 / n, 1),
        "f1": round(f1 * 100 / n, 1),
        "p": round(sum(s["p"] for s in scores) * 100 / n, 1),
        "r": round(sum(s["r"] for s in scores) * 100 / n, 1),
        "avg": round((em + f1) * 50 / n, 1),
    }


@answer_scorer("cotempqa")
def _cotempqa(answers: tuple[str, ...] | None, ex: Example, output: str) -> dict[str, Any]:
    """Strict set-level scores, plus `upstream`: the original CoTempQA scorer's numbers. The
    original read a published record's own strings: when rescoring one, `meta["published"]`
    holds them (`gold`, `question`, `facts`, `triple_element`); otherwise the example's."""
    scores = set_scores(answers, ex.answers)
    rec = ex.meta.get("published") or {
        "gold": ex.answers,
        "question": ex.question,
        "facts": [c.text for c in ex.context],
        "triple_element": ex.meta.get("triple_element"),
    }
    scores["upstream"] = cotempqa_upstream(output, rec["gold"], rec["question"], rec["facts"], rec["triple_element"])
    return scores


# -- bAbI -----------------------------------------------------------------------------------
def babi_scores(pred: tuple[str, ...] | None, gold: tuple[str, ...], task: int) -> dict[str, Any]:
    """Exact match; order-insensitive for lists-sets (task 8), ordered for path-finding (19)."""

    def split(items):
        return [t.strip().lower().rstrip(".") for a in items for t in a.split(",") if t.strip()]

    p, g = split(pred or ()), split(gold)
    ok = sorted(p) == sorted(g) if task == 8 else p == g
    return {"correct": bool(p) and ok, "em": float(bool(p) and ok)}


@answer_scorer("babi")
def _babi(answers: tuple[str, ...] | None, ex: Example, output: str) -> dict[str, Any]:
    return babi_scores(answers, ex.answers, int(ex.subset.removeprefix("qa")))


# -- MS MARCO -------------------------------------------------------------------------------
def _rouge_l(pred: str, gold: str) -> float:
    return _rouge().score(gold, pred)["rougeL"].fmeasure


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _bleu1(pred: str, golds: list[str]) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp = tokens(pred)
    refs = [tokens(g) for g in golds]
    if not hyp or not any(refs):
        return 0.0
    return float(sentence_bleu(refs, hyp, weights=(1.0,), smoothing_function=SmoothingFunction().method0))


def msmarco_scores(pred: tuple[str, ...] | None, gold: tuple[str, ...]) -> dict[str, Any]:
    """MS MARCO's gold answers are alternatives: a stated answer is right when it matches any of
    them. `correct` (normalised exact match): every stated answer matches some gold answer (or
    all of them joined do). Token F1 and ROUGE-L (max over gold answers) and BLEU-1 (all gold
    answers as references), as in the MS MARCO QnA evaluation, are averaged over the stated
    answers. "No Answer Present." is its own case: right only when both sides say it."""
    items = [a for a in pred or () if a.strip()]
    text = " ".join(items).strip()
    gold_nap = normalize_answer(NO_ANSWER) in {normalize_answer(a) for a in gold}
    pred_nap = normalize_answer(text) == normalize_answer(NO_ANSWER)
    if gold_nap or pred_nap:
        ok = float(gold_nap and pred_nap)
        return {"correct": bool(ok), "em": ok, "f1": ok, "rouge_l": ok, "bleu_1": ok, "no_answer": True}
    if not items:
        return {"correct": False, "em": 0.0, "f1": 0.0, "rouge_l": 0.0, "bleu_1": 0.0, "no_answer": False}
    golds = {normalize_answer(g) for g in gold}
    em = float(all(normalize_answer(a) in golds for a in items) or normalize_answer(text) in golds)

    def per_item(metric) -> float:
        return sum(metric(a) for a in items) / len(items)

    return {
        "correct": bool(em),
        "em": em,
        "f1": per_item(lambda a: max(token_f1(tokens(a), tokens(g)) for g in gold)),
        "rouge_l": per_item(lambda a: max(_rouge_l(a, g) for g in gold)),
        "bleu_1": per_item(lambda a: _bleu1(a, list(gold))),
        "no_answer": False,
    }


@answer_scorer("msmarco")
def _msmarco(answers: tuple[str, ...] | None, ex: Example, output: str) -> dict[str, Any]:
    return msmarco_scores(answers, ex.answers)
