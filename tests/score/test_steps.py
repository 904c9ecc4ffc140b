"""The trace-step scorers (score/steps.py) against bugs that were planted in them and that the rest
of the suite let through: each test names the bug it guards against and was seen to fail with
that bug planted."""

from __future__ import annotations

from cotempqa_like import FACTS, cotempqa_like
from tracekd.data import ContextItem, Example
from tracekd.score.steps import evidence_score, paper_steps, score_steps
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace, render

TEMPORAL = "The temporal relation between the event in question and the event in context is: {label}."
CATEGORY = "The category of the question asked is: {label}."


def test_exact_evidence_needs_every_cited_item_to_match_the_context():
    """Bug: the exact-set match ignored cited items that match no context fact, so a trace citing
    all gold facts plus an invented one was scored exact."""
    ex = cotempqa_like(("f0", "f1"))
    gold = (FACTS[0], FACTS[1])
    invented = (*gold, "Ann holds the position of governor from 1990 to 1995.")
    assert evidence_score(gold, ex).exact
    for tolerant in (False, True):
        s = evidence_score(invented, ex, tolerant=tolerant)
        assert not s.exact and s.recall == 1 and s.precision == 2 / 3 and s.unmatched == 1
    out = render(Trace("during", invented, ("senator",)), "paper", TEMPORAL)
    steps = score_steps(parse(out, TEMPORAL), ex)
    assert steps["label_correct"] and not steps["evidence"]["exact"] and not steps["trace_correct"]


def test_the_papers_label_rule_reads_the_first_sentence_only():
    """Bug: the paper's label check accepted the gold label anywhere in the trace; the paper's code
    looks for it in the first sentence only."""
    ex = Example(
        "t/2",
        "babi",
        "qa2",
        "Where is the apple?",
        (ContextItem("1", "Mary took the apple."),),
        ("kitchen",),
        label="two-supporting-facts",
        evidence=("1",),
    )
    later = (
        "<think>The category of the question asked is: counting. I need to use the following facts to answer "
        "the question: ['Mary took the apple.'] so this is two-supporting-facts.</think> <answer>['kitchen']</answer>"
    )
    assert {k: v for k, v in paper_steps(later, ex).items() if k != "by_rule"} == {
        "label_correct": False,
        "evidence_correct": True,
        "trace_correct": False,
    }
    first = later.replace("counting", "two-supporting-facts", 1)
    assert paper_steps(first, ex)["label_correct"] is True
