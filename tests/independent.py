"""Expectations computed from the raw files in ../shared by a route of their own.

Nothing here imports tracekd: the raw JSON / text is read with `json` and plain string
operations, so a test that compares tracekd with these values compares two independent
computations, not the program with a copy of its own output.

CoTempQA: the anchor is found by turning each fact into the question's "While <subject>
<relation> <object>," clause and testing the question's prefix (tracekd goes the other way,
with a regular expression over the facts); the answer-bearing facts, the preference for
facts that overlap the anchor in time and the choice among several facts matching the anchor
clause follow the wording of docs/decomposition.md; dates are compared as (year, month, day)
tuples, a year covering January 1 to December 31 and a month its days 1 to 31.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

COTEMPQA_FILES = {"equal": "equal.json", "overlap": "overlap.json", "during": "during_partial.json", "mix": "mix.json"}
MONTHS = {
    m: i
    for i, m in enumerate(
        (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        start=1,
    )
}

#: relation phrase written in a fact -> the phrase the question's "While ..." clause uses
FACT_TO_QUESTION = {
    "holds the position of": "was holding the position of",
    "works for": "was working for",
    "worked for": "was working for",
    "is a member of the": "was a member of",
    "attended": "attended",
    "plays for": "was playing for",
    "is owned by": "was owned by",
    "is the chair of": None,  # never asked about
}


def one_line(s: str) -> str:
    return " ".join(s.split())


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cotempqa_raw(data: Path) -> dict[str, dict]:
    """example id -> raw record, for the four subset files."""
    out = {}
    for subset, name in COTEMPQA_FILES.items():
        for rec in jsonl(data / "cotempqa" / name):
            out[f"cotempqa/{subset}/{rec['index']}"] = rec
    return out


# -- CoTempQA facts, read with string operations -------------------------------------------


def _date(s: str):
    """'2019', 'December, 2019' or 'March 11, 2019' -> (first day, last day) as tuples."""
    if s.isdigit():
        return (int(s), 1, 1), (int(s), 12, 31)
    head, _, year = s.rpartition(", ")
    if not year.isdigit():
        return None
    words = head.split(" ")
    if words[0] not in MONTHS or len(words) > 2 or (len(words) == 2 and not words[1].isdigit()):
        return None
    y, m = int(year), MONTHS[words[0]]
    if len(words) == 1:
        return (y, m, 1), (y, m, 31)
    return (y, m, int(words[1])), (y, m, int(words[1]))


@dataclass(frozen=True)
class RawFact:
    id: str
    subject: str
    phrase: str
    object: str
    start: tuple
    end: tuple

    def overlaps(self, other: RawFact) -> bool:
        return self.start <= other.end and other.start <= self.end

    def relation_to(self, other: RawFact) -> str:
        """equal, during (one inside the other), overlap (partly), or none."""
        if not self.overlaps(other):
            return "none"
        if (self.start, self.end) == (other.start, other.end):
            return "equal"
        inside = self.start >= other.start and self.end <= other.end
        around = other.start >= self.start and other.end <= self.end
        return "during" if inside or around else "overlap"


def read_fact(fid: str, text: str) -> RawFact | None:
    body = one_line(text).removesuffix(".")
    head = when = None
    k = body.rfind(" from ")
    if k >= 0 and " to " in body[k:]:
        a, _, b = body[k + len(" from ") :].partition(" to ")
        da, db = _date(a), _date(b)
        if da and db:
            head, when = body[:k], (da[0], db[1])
    if head is None:
        k = body.rfind(" in ")
        d = _date(body[k + len(" in ") :]) if k >= 0 else None
        if d is None:
            return None
        head, when = body[:k], d
    # the longest phrase first: "is a member of the" before any shorter one
    for phrase in sorted(FACT_TO_QUESTION, key=len, reverse=True):
        subject, sep, obj = head.partition(f" {phrase} ")
        if sep:
            return RawFact(fid, subject, phrase, obj, *when)
    return None


@dataclass(frozen=True)
class Reading:
    anchor: frozenset[str]
    answer_facts: frozenset[str]
    unanswered: int  # answers no separate fact states
    preference_used: bool  # some answer was stated by facts both overlapping the anchor and not
    matching: int  # facts matching the anchor clause, before one of several is chosen
    ambiguous: bool  # several matched and not exactly one gives the labelled relation
    gives_label: bool  # one anchor, and the answers stand to it in the labelled relation


def _stating(question: str, answer: str, anchors: list[RawFact], facts: list[RawFact]) -> tuple[list, list]:
    """(facts stating `answer`, those of them overlapping an anchor) for the given anchor(s)."""
    clause_end = (
        len(f"While {anchors[0].subject} {FACT_TO_QUESTION[anchors[0].phrase]} {anchors[0].object},") if anchors else 0
    )
    rest = f" {question[clause_end:]} "
    people = {f.subject for f in anchors}
    stating = []
    for f in facts:
        if f in anchors:
            continue
        if f.object.casefold() == answer.casefold() and (f.subject in people or f" {f.subject} " in rest):
            stating.append(f)  # "which position did <person> hold ...?"
        elif f.subject.casefold() == answer.casefold() and any(
            f.object == a.object and FACT_TO_QUESTION[f.phrase] == FACT_TO_QUESTION[a.phrase] for a in anchors
        ):
            stating.append(f)  # "who also ...?"
    return stating, [f for f in stating if any(f.overlaps(a) for a in anchors)]


def _gives_label(label: str, anchor: RawFact, chosen: list[list[RawFact]]) -> bool:
    """Each answer's chosen facts against this one anchor, read as docs/decomposition.md says."""
    per_answer = [{f.relation_to(anchor) for f in facts} for facts in chosen]
    if label == "mix":
        every = set().union(*per_answer)
        return all(per_answer) and "none" not in every and len(every) >= 2
    return all(label in rels for rels in per_answer)


def read_cotempqa(rec: dict, label: str) -> Reading:
    """The `tracekd` evidence rule of docs/decomposition.md, applied to one raw record whose gold
    label (its subset) is `label`."""
    question = one_line(rec["question"])
    answers = [one_line(a) for a in rec["answer"]]
    facts = [f for f in (read_fact(f"f{i}", t) for i, t in enumerate(rec["facts"])) if f is not None]
    matching = [
        f
        for f in facts
        if FACT_TO_QUESTION[f.phrase]
        and question.startswith(f"While {f.subject} {FACT_TO_QUESTION[f.phrase]} {f.object},")
    ]

    def choose(anchors):
        per_answer = [_stating(question, a, anchors, facts) for a in answers]
        return [together or stating for stating, together in per_answer], per_answer

    anchors, (chosen, per_answer) = matching, choose(matching)
    if len(matching) > 1:
        fits = [(m, choose([m])) for m in matching]
        fits = [(m, c) for m, c in fits if _gives_label(label, m, c[0])]
        if len(fits) == 1:
            anchors, (chosen, per_answer) = [fits[0][0]], fits[0][1]
    return Reading(
        anchor=frozenset(f.id for f in anchors),
        answer_facts=frozenset(f.id for group in chosen for f in group),
        unanswered=sum(not c for c in chosen),
        preference_used=any(together and len(together) < len(stating) for stating, together in per_answer),
        matching=len(matching),
        ambiguous=len(anchors) > 1,
        gives_label=len(anchors) == 1 and _gives_label(label, anchors[0], chosen),
    )


# -- bAbI and MS MARCO -----------------------------------------------------------------------


def babi_question_lines(path: Path) -> int:
    return sum("\t" in line for line in path.read_text(encoding="utf-8").splitlines())


def msmarco_raw(data: Path) -> list[dict]:
    return json.loads((data / "msmarco" / "ms_marco_v1.1_train_sample200.json").read_text(encoding="utf-8"))


# -- the paper's published outputs, read with plain string operations (not the parser's expressions) --
def lines(p: str) -> list[str]:
    """A published output's lines, stripped."""
    return [ln.strip() for ln in p.split("\n")]


def label_value(rest: str) -> str:
    """A label sentence's value: after "is:", up to a tag, a full stop or the evidence sentence."""
    v = rest.split("<", 1)[0]
    for stop in (". ", "I need", "i need"):
        v = v.split(stop, 1)[0]
    return v.strip().removesuffix(".").strip().strip("'\"").strip()


def label_of(p: str) -> str | None:
    """The label a published output states: in the paper's sentence ("The temporal relation ...
    is: X"), or in a paraphrase of it as the trace's first sentence ("The time interval is: X")."""
    for ln in lines(p.replace("<think>", "\n")):
        if ln.lower().startswith("the temporal relation") and "is:" in ln:
            return label_value(ln.split("is:", 1)[1]) or None
    if "<think>" in p:
        first = p.split("<think>", 1)[1].lstrip().split("\n", 1)[0]
        before, colon, after = first.partition(":")
        if (
            colon
            and first.lower().startswith("the ")
            and before.rstrip().lower().endswith(" is")
            and "." not in before
            and "<" not in before
        ):
            return label_value(after) or None
    return None
