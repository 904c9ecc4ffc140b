"""A small hand-made CoTempQA-like example: the anchor fact f0, the answer-bearing f1, and f2, which
contains the answer ("vice senator"), so the paper's evidence rule counts it as gold while
tracekd's does not; three facts that are never evidence."""

from __future__ import annotations

from tracekd.data import ContextItem, Example

FACTS = (
    "Ann holds the position of mayor from 1990 to 1995.",  # f0 anchor
    "Ann holds the position of senator from 1991 to 1993.",  # f1 answer-bearing
    "Ann holds the position of vice senator in 1992.",  # f2 contains the answer: gold under the paper's rule
    "Ann works for Acme from 1980 to 1982.",
    "Ann attended Oxford in 1975.",
    "Ann works for Initech in 2001.",
)


def cotempqa_like(evidence: tuple[str, ...]) -> Example:
    return Example(
        "t/1",
        "cotempqa",
        "during",
        "While Ann was holding the position of mayor, which position did Ann hold?",
        tuple(ContextItem(f"f{i}", t) for i, t in enumerate(FACTS)),
        ("senator",),
        label="during",
        evidence=evidence,
        anchor=("f0",),
        answer_facts=("f1",),
    )
