"""Dates and time intervals as written in CoTempQA facts, and relations between intervals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MONTHS = (
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
)
_MONTH_NO = {m: i for i, m in enumerate(MONTHS, start=1)}

#: the relations between two intervals a question's answers can stand in to its anchor
RELATIONS = ("equal", "overlap", "during")
#: the temporal labels: one relation, or `mix` when the answers stand in different ones (CoTempQA's subsets)
TEMPORAL_LABELS = (*RELATIONS, "mix")

#: "2019", "December, 2019", "March 11, 2019"
DATE = r"(?:(?:" + "|".join(MONTHS) + r")(?: \d{1,2})?, )?\d{1,4}"
#: "in <date>" or "from <date> to <date>"
TIME = rf"(?:in (?P<at>{DATE})|from (?P<start>{DATE}) to (?P<end>{DATE}))"

_DATE_RE = re.compile(r"^(?:(?P<month>[A-Z][a-z]+)(?: (?P<day>\d{1,2}))?, )?(?P<year>\d{1,4})$")


def _ordinal(year: int, month: int, day: int) -> int:
    # a monotone day number; calendar validity is irrelevant for comparisons
    return (year * 12 + (month - 1)) * 31 + (day - 1)


@lru_cache(maxsize=65536)
def date_span(text: str) -> tuple[int, int]:
    """First and last day covered by a date of year, month or day precision."""
    m = _DATE_RE.match(text)
    if not m:
        raise ValueError(f"not a date: {text!r}")
    year = int(m["year"])
    if m["month"] is None:
        return _ordinal(year, 1, 1), _ordinal(year, 12, 31)
    month = _MONTH_NO[m["month"]]
    if m["day"] is None:
        return _ordinal(year, month, 1), _ordinal(year, month, 31)
    d = int(m["day"])
    return _ordinal(year, month, d), _ordinal(year, month, d)


@dataclass(frozen=True, slots=True)
class Interval:
    start: int
    end: int

    def overlaps(self, other: Interval) -> bool:
        return self.start <= other.end and other.start <= self.end


def interval(at: str | None, start: str | None, end: str | None) -> Interval:
    if at is not None:
        a, b = date_span(at)
        return Interval(a, b)
    assert start is not None and end is not None
    return Interval(date_span(start)[0], date_span(end)[1])


def relation(a: Interval, b: Interval) -> str:
    """CoTempQA's relations between two intervals: equal, during, overlap, or none."""
    if a == b:
        return "equal"
    if (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end):
        return "during"
    if a.overlaps(b):
        return "overlap"
    return "none"


def combined_relation(anchor: Interval, others: list[Interval]) -> str:
    """One label for a question: the shared relation, or `mix` when the answers differ."""
    rels = {relation(anchor, o) for o in others}
    if len(rels) == 1:
        return rels.pop()
    if "none" in rels or not rels:
        return "none"
    return "mix"
