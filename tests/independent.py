"""Expectations computed from the raw files in ../shared by a route of their own.

Nothing here imports tracekd: the raw JSON / text is read with `json` and plain string
operations, so a test that compares tracekd with these values compares two independent
computations, not the program with a copy of its own output.

CoTempQA: the anchor is found by turning each fact into the question's "While <subject>
<relation> <object>," clause and testing the question's prefix (tracekd goes the other way,
with a regular expression over the facts); the answer-bearing facts and the preference for
facts that overlap the anchor in time follow the wording of docs/decomposition.md; dates are
compared as (year, month, day) tuples, a year covering January 1 to December 31 and a month
its days 1 to 31.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

COTEMPQA_FILES = {"equal": "equal.json", "overlap": "overlap.json", "during": "during_partial.json", "mix": "mix.json"}
MONTHS = {m: i for i, m in enumerate(("January", "February", "March", "April", "May", "June", "July", "August",
                                      "September", "October", "November", "December"), start=1)}

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


def read_fact(fid: str, text: str) -> RawFact | None:
    body = one_line(text).removesuffix(".")
    head = when = None
    k = body.rfind(" from ")
    if k >= 0 and " to " in body[k:]:
        a, _, b = body[k + len(" from "):].partition(" to ")
        da, db = _date(a), _date(b)
        if da and db:
            head, when = body[:k], (da[0], db[1])
    if head is None:
        k = body.rfind(" in ")
        d = _date(body[k + len(" in "):]) if k >= 0 else None
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


def read_cotempqa(rec: dict) -> Reading:
    """The `tracekd` evidence rule of docs/decomposition.md, applied to one raw record."""
    question = one_line(rec["question"])
    facts = [f for f in (read_fact(f"f{i}", t) for i, t in enumerate(rec["facts"])) if f is not None]
    anchors = []
    for f in facts:
        asked = FACT_TO_QUESTION[f.phrase]
        if asked and question.startswith(f"While {f.subject} {asked} {f.object},"):
            anchors.append(f)
    anchor_ids = {f.id for f in anchors}
    clause_end = len(f"While {anchors[0].subject} {FACT_TO_QUESTION[anchors[0].phrase]} {anchors[0].object},") if anchors else 0
    rest = f" {question[clause_end:]} "
    people = {f.subject for f in anchors}
    answer_facts: set[str] = set()
    unanswered = 0
    preference_used = False
    for answer in (one_line(a) for a in rec["answer"]):
        stating = []
        for f in facts:
            if f.id in anchor_ids:
                continue
            if f.object.casefold() == answer.casefold() and (f.subject in people or f" {f.subject} " in rest):
                stating.append(f)  # "which position did <person> hold ...?"
            elif f.subject.casefold() == answer.casefold() and any(
                    f.object == a.object and FACT_TO_QUESTION[f.phrase] == FACT_TO_QUESTION[a.phrase] for a in anchors):
                stating.append(f)  # "who also ...?"
        together = [f for f in stating if any(f.overlaps(a) for a in anchors)]
        if together and len(together) < len(stating):
            preference_used = True
        chosen = together or stating
        unanswered += not chosen
        answer_facts |= {f.id for f in chosen}
    return Reading(frozenset(anchor_ids), frozenset(answer_facts), unanswered, preference_used)


# -- bAbI and MS MARCO -----------------------------------------------------------------------

def babi_question_lines(path: Path) -> int:
    return sum("\t" in line for line in path.read_text(encoding="utf-8").splitlines())


def msmarco_raw(data: Path) -> list[dict]:
    return json.loads((data / "msmarco" / "ms_marco_v1.1_train_sample200.json").read_text(encoding="utf-8"))
