"""CoTempQA (Su et al. 2024): temporal co-occurrence questions over a list of dated facts.

Decomposition:
- Classification: the temporal relation between the question's event and the answer's
  event, i.e. the subset (equal / overlap / during / mix), as in the paper.
- Information Retrieval (`ir_rule="tracekd"`, default): the anchor fact (the event the question
  is conditioned on, "While X was ..."; when several facts match that clause, the one the answers
  co-occur with in the labelled relation, see `resolve_anchor`) plus the answer-bearing facts
  (the facts whose object - or, for "who also ..." questions, subject - is an answer, preferring
  the ones that co-occur with the anchor). `ir_rule="paper"`: the paper's rule, every fact that
  contains an answer as a substring.
- Flags: `no_anchor`, `ambiguous_anchor`, `no_answer_fact`, `answer_not_in_evidence`, and
  `label_contradicts_dates` when the subset's relation is not the one the dates as written give
  (see `contradicts_dates`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field

from tracekd.data.base import Dataset, DatasetOptions, Retrieval, register, subsets_among
from tracekd.data.reading import check_unique_ids, load_hub, record_id, resolve_source, string_list
from tracekd.data.schema import ContextItem, Example, clean_text
from tracekd.data.temporal import RELATIONS, TEMPORAL_LABELS, TIME, Interval, interval, relation
from tracekd.errors import InputError
from tracekd.jsonio import read_jsonl

SUBSETS = TEMPORAL_LABELS  # CoTempQA's subsets are its labels
#: how a free-form trace states each temporal relation (`Dataset.label_lexicon`)
LABEL_LEXICON = {
    "equal": (
        "equal",
        "identical",
        "exactly the same",
        "exact same",
        "same dates",
        "same start",
        "coincide",
        "coincides",
    ),
    "overlap": ("overlap", "overlaps", "overlapping", "overlapped", "intersect", "intersects", "partially"),
    "during": ("during", "within", "contained", "inside", "falls within", "entirely", "encompass", "encompasses"),
    "mix": ("mix", "mixed", "combination of"),
}
#: CoTempQA's seven ways of saying "at the same time" in a question: they state no relation
QUESTION_WORDING = (
    "within the same time interval",
    "concurrently",
    "simultaneously",
    "at the same time",
    "during the same time period",
    "during the same time span",
    "during the identical time period",
)
IrRule = Literal["tracekd", "paper"]  # the gold-evidence rules, the default first
IR_RULES: tuple[IrRule, ...] = get_args(IrRule)

#: relation phrase in a fact -> relation family
FACT_RELATIONS = {
    "holds the position of": "position",
    "is a member of the": "member",
    "is a member of": "member",
    "works for": "employer",
    "worked for": "employer",
    "attended": "school",
    "plays for": "team",
    "played for": "team",
    "is owned by": "owner",
    "was owned by": "owner",
    "is the chair of": "chair",
}
#: relation phrase in the question's "While ..." clause -> relation family
QUESTION_RELATIONS = {
    "was holding the position of": "position",
    "held the position of": "position",
    "was a member of": "member",
    "was working for": "employer",
    "worked for": "employer",
    "attended": "school",
    "was attending": "school",
    "was playing for": "team",
    "played for": "team",
    "was owned by": "owner",
}
_FACT_RE = re.compile(
    r"^(?P<subj>.+?) (?P<rel>"
    + "|".join(re.escape(r) for r in sorted(FACT_RELATIONS, key=len, reverse=True))
    + rf") (?P<obj>.+) {TIME}\.?$"
)


@dataclass(frozen=True, slots=True)
class Fact:
    id: str
    subj: str
    family: str
    obj: str
    when: Interval


@lru_cache(maxsize=1 << 17)  # each example is decomposed once per evidence rule; facts recur across examples
def parse_fact(item: ContextItem) -> Fact | None:
    m = _FACT_RE.match(item.text)
    if not m:
        return None
    try:
        when = interval(m["at"], m["start"], m["end"])
    except ValueError:
        return None
    return Fact(item.id, m["subj"], FACT_RELATIONS[m["rel"]], m["obj"], when)


@lru_cache(maxsize=65536)
def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def find_anchor(question: str, facts: list[Fact]) -> list[Fact]:
    """Facts matching the question's "While <subject> <relation> <object>," clause."""
    out = []
    for f in facts:
        prefix = f"While {f.subj} "
        if not question.startswith(prefix):
            continue
        rest = question[len(prefix) :]
        for phrase, family in QUESTION_RELATIONS.items():
            if family == f.family and rest.startswith(f"{phrase} {f.obj},"):
                out.append(f)
                break
    return out


def answer_bearing(question: str, answer: str, anchors: list[Fact], facts: list[Fact]) -> list[Fact]:
    """Facts that state `answer` as the thing asked for."""
    a = _norm(answer)
    anchor_ids = {f.id for f in anchors}
    tail = question.split(",", 1)[1] if "," in question else question
    found = []
    for f in facts:
        if f.id in anchor_ids or a not in (_norm(f.obj), _norm(f.subj)):
            continue
        if _norm(f.obj) == a and (any(f.subj == x.subj for x in anchors) or f" {f.subj} " in f" {tail} "):
            found.append(f)  # "which position did <subject> hold ...?"
        elif _norm(f.subj) == a and any(f.obj == x.obj and f.family == x.family for x in anchors):
            found.append(f)  # "who also held the position of <object> ...?"
    if not anchors and not found:
        found = [f for f in facts if _norm(f.obj) == a or _norm(f.subj) == a]
    co = [f for f in found if any(f.when.overlaps(x.when) for x in anchors)]
    return co or found


def _relations(anchors: list[Fact], found: list[Fact]) -> set[str]:
    return {relation(x.when, f.when) for x in anchors for f in found}


def contradicts_dates(label: str, anchors: list[Fact], by_answer: list[list[Fact]]) -> bool:
    """The gold label contradicts the dates as written: some answer has no answer-bearing fact
    in the labelled relation to an anchor (e.g. labelled `overlap` while the answer's interval
    lies inside the anchor's). `mix` is not checked: its answers stand in different relations."""
    if label not in RELATIONS or not anchors:
        return False
    return any(found and label not in _relations(anchors, found) for found in by_answer)


def fits_label(label: str, anchor: Fact, by_answer: list[list[Fact]]) -> bool:
    """The answers co-occur with `anchor` in the labelled relation: for `equal`, `overlap` and
    `during` every answer has an answer-bearing fact in that relation to it; for `mix` every
    answer has one that co-occurs with it and these facts stand in at least two relations."""
    rels = [_relations([anchor], found) for found in by_answer]
    if label not in RELATIONS:
        seen = set().union(*rels)
        return all(rels) and "none" not in seen and len(seen) > 1
    return all(label in r for r in rels)


def resolve_anchor(
    question: str, label: str, answers: tuple[str, ...], facts: list[Fact]
) -> tuple[list[Fact], list[list[Fact]], bool]:
    """The anchor(s), each answer's answer-bearing facts, and whether the anchor is ambiguous.

    When several facts match the question's clause (same subject, relation and object, other
    dates), each is tried alone as the anchor - the others then count as ordinary facts, which
    may state an answer ("president" while holding the position of president) - and the one
    candidate that `fits_label` is kept. When none or more than one fits, all are kept as
    anchors (and none of them can state an answer) and the example is ambiguous."""
    anchors = find_anchor(question, facts)
    if len(anchors) > 1:
        fitting = []
        for c in anchors:
            by_answer = [answer_bearing(question, a, [c], facts) for a in answers]
            if fits_label(label, c, by_answer):
                fitting.append((c, by_answer))
        if len(fitting) == 1:
            anchor, by_answer = fitting[0]
            return [anchor], by_answer, False
    return anchors, [answer_bearing(question, a, anchors, facts) for a in answers], len(anchors) > 1


class CoTempQAOptions(DatasetOptions):
    """`subsets`: the relations to keep; `ir_rule`: the gold-evidence rule."""

    ir_rule: IrRule = Field(
        IR_RULES[0],
        description="CoTempQA evidence rule: tracekd (anchor + answer-bearing "
        "facts) or paper (every fact containing an answer).",
    )

    _relations = subsets_among(SUBSETS, "CoTempQA subset(s)")


@register
class CoTempQA(Dataset):
    name = "cotempqa"
    labels = SUBSETS
    label_sentence = "The temporal relation between the event in question and the event in context is: {label}."
    answer_scorer = "cotempqa"
    label_lexicon = LABEL_LEXICON
    label_neutral = QUESTION_WORDING
    Options = CoTempQAOptions
    ir_rules = IR_RULES

    def __init__(self, seed: int = 0, **options):
        super().__init__(seed, **options)
        self.ir_rule = self.options.ir_rule
        self.subsets = tuple(self.options.subsets or SUBSETS)

    # -- reading ---------------------------------------------------------------------------
    def read(self, source: str | None) -> list[Example]:
        kind, where = resolve_source(source, self.name)
        if kind == "hub":
            return self._read_hub(str(where))
        path = Path(where)
        if path.is_dir():
            files = []
            for subset in self.subsets:
                cands = [path / f"{subset}.json", path / f"{subset}_partial.json", path / f"{subset}.jsonl"]
                hit = next((c for c in cands if c.is_file()), None)
                if hit is None:
                    raise InputError(f"no file for CoTempQA subset {subset!r} (looked for {cands[0].name})", path)
                files.append((subset, hit))
        else:
            subset = path.stem.removesuffix("_partial")
            if subset not in SUBSETS:
                raise InputError(
                    f"cannot tell the CoTempQA subset from the file name (expected one of {', '.join(SUBSETS)})", path
                )
            files = [(subset, path)]
        out: list[Example] = []
        for subset, file in files:
            out += [self._example(rec, subset, file, lineno) for lineno, rec in read_jsonl(file)]
        check_unique_ids(out, files[0][1] if len(files) == 1 else path, "example id (repeated 'index')")
        return out

    def _read_hub(self, hub_id: str) -> list[Example]:
        """The hub repo holds the official files (equal.json, ...): one split per subset."""
        dd = load_hub(hub_id, data_files={s: f"{s}.json" for s in self.subsets})
        out = []
        for subset in self.subsets:
            out += [self._example(rec, subset, f"{hub_id}/{subset}.json", i + 1) for i, rec in enumerate(dd[subset])]
        return out

    def _example(self, rec: dict, subset: str, file, lineno: int) -> Example:
        for key in ("question", "facts", "answer"):
            if key not in rec:
                raise InputError(f"record has no {key!r} field", file, lineno)
        if not isinstance(rec["question"], str) or not rec["question"].strip():
            raise InputError("field 'question' must be a non-empty string", file, lineno)
        string_list(rec["facts"], "facts", file, lineno, allow_empty=True)
        answers = tuple(clean_text(a) for a in string_list(rec["answer"], "answer", file, lineno) if a.strip())
        triple = rec.get("triple_element")
        if triple is not None and not isinstance(triple, str):
            raise InputError("field 'triple_element' must be a string", file, lineno)
        index = record_id(rec.get("index", lineno - 1), "index", file, lineno)
        return Example(
            id=f"cotempqa/{subset}/{index}",
            dataset=self.name,
            subset=subset,
            question=clean_text(rec["question"]),
            context=tuple(ContextItem(f"f{i}", clean_text(t)) for i, t in enumerate(rec["facts"])),
            answers=answers,
            meta={"triple_element": triple, "index": rec.get("index", lineno - 1)},
        )

    # -- decomposition ---------------------------------------------------------------------
    def classify(self, ex: Example) -> str:
        return ex.subset

    # -- scoring -----------------------------------------------------------------------------
    def check_example(self, ex: Example, path) -> None:
        if not isinstance(ex.meta.get("triple_element"), (str, type(None))):
            raise InputError(f"example {ex.id!r}: meta.triple_element must be a string", path)
        if "published" in ex.meta:  # only rescore sets it, in memory
            raise InputError(f"example {ex.id!r}: meta.published is not part of a prepared record", path)

    def retrieve(self, ex: Example) -> Retrieval:
        facts = [f for f in (parse_fact(c) for c in ex.context) if f is not None]
        label = ex.subset  # the gold relation (`classify` of a synthetic example reads the retrieval)
        anchors, by_answer, ambiguous = resolve_anchor(ex.question, label, ex.answers, facts)
        bearing: dict[str, None] = {}
        flags = []
        if not anchors:
            flags.append("no_anchor")
        if ambiguous:
            flags.append("ambiguous_anchor")
        for found in by_answer:
            bearing.update((f.id, None) for f in found)
        if not all(by_answer):
            flags.append("no_answer_fact")
        if contradicts_dates(label, anchors, by_answer):
            flags.append("label_contradicts_dates")
        order = {c.id: i for i, c in enumerate(ex.context)}
        anchor_ids = tuple(sorted((f.id for f in anchors), key=order.__getitem__))
        answer_ids = tuple(sorted(bearing, key=order.__getitem__))
        if self.ir_rule == "paper":
            evidence = tuple(c.id for c in ex.context if any(a in c.text for a in ex.answers))
        else:
            evidence = tuple(sorted(set(anchor_ids) | set(answer_ids), key=order.__getitem__))
        texts = [ex.item_text(i) for i in evidence]
        if not all(any(a in t for t in texts) for a in ex.answers):
            flags.append("answer_not_in_evidence")
        return Retrieval(evidence, anchor_ids, answer_ids, tuple(flags))
