"""The free-form trace scorer: cited items, stated labels, and its agreement with the parser on
rule-based traces (where the parser gives the truth)."""

from __future__ import annotations

import random

import pytest

from freeform_measure import agreement, fixture_examples, hand_labelled, rendered
from tracekd.data import get_dataset
from tracekd.data.schema import ContextItem, Example
from tracekd.score import metrics
from tracekd.score.evaluate import score_output
from tracekd.score.freeform import cited, freeform_trace, sentences, stated_labels, trace_and_answer


def _ex(dataset, question, facts, label="", evidence=(), answers=("x",)):
    return Example(
        id="t/1",
        dataset=dataset,
        subset=label or "s",
        question=question,
        context=tuple(ContextItem(f"f{i}", t) for i, t in enumerate(facts)),
        answers=answers,
        label=label,
        evidence=tuple(evidence),
    )


WALPOLE = _ex(
    "cotempqa",
    "While Robert Walpole was holding the position of Chancellor of the Exchequer, which position did "
    "Robert Walpole hold during the same time period?",
    [
        "Robert Walpole holds the position of Leader of the House of Commons from April 4, 1721 to February 6, 1742.",
        "Robert Walpole holds the position of leader in September, 1742.",
        "Robert Walpole holds the position of Chancellor of the Exchequer from April 4, 1721 to February 12, 1742.",
        "Robert Walpole holds the position of Master of the Mint in October, 1742.",
    ],
    label="equal",
    evidence=("f0", "f2"),
)


def test_temporal_facts_need_their_entity_and_years():
    assert cited(
        "He led the House of Commons as its Leader... Leader of the House of Commons from 1721 to 1742.", WALPOLE
    ) == ["f0"]
    # the entity without the time is not a citation; the question's own entity needs the years too
    assert cited("He was Master of the Mint. He was also Chancellor of the Exchequer.", WALPOLE) == []
    assert cited("As Chancellor of the Exchequer (1721-1742) he ...", WALPOLE) == ["f2"]
    # "leader in 1742" is part of "Leader of the House of Commons ... 1742", not a citation of its own
    assert cited("Leader of the House of Commons from April 4, 1721 to February 6, 1742", WALPOLE) == ["f0"]
    assert cited("He was made leader in September 1742 and Master of the Mint in October 1742.", WALPOLE) == [
        "f1",
        "f3",
    ]
    assert cited("Robert Walpole holds the position of Master of the Mimt in 1742", WALPOLE) == ["f3"]  # a typo


def test_shared_entities_are_not_required():
    ex = _ex(
        "cotempqa",
        "While Chen Chu was a member of Chinese Youth Party, who was also a member of Chinese Youth Party at the same time?",
        [
            "Yu Shyi-kun is a member of the Chinese Youth Party from 1966 to 1975.",
            "Chen Chu is a member of the Chinese Youth Party from 1969 to 1979.",
            "Karin Binder is a member of the Chinese Youth Party in 1966.",
        ],
    )
    assert cited("Yu Shyi-kun was in it from 1966 to 1975, overlapping Chen Chu (1969-1979).", ex) == ["f0", "f1"]


BABI = _ex(
    "babi",
    "Where is the football?",
    [
        "Mary got the football there.",
        "Mary went back to the garden.",
        "John went to the kitchen.",
        "Mary moved to the garden.",
        "Sandra is in the kitchen.",
        "Sandra is not in the kitchen.",
        "Jeff gave the milk to Bill.",
        "Bill gave the milk to Jeff.",
    ],
)


@pytest.mark.parametrize(
    "trace, want",
    [
        ("Mary picked up the football. Then she journeyed to the garden.", ["f0"]),  # "she": no Mary in that sentence
        (
            "Mary grabbed the football. Mary travelled to the garden.",
            ["f0", "f3"],
        ),  # verbs of one class; the closest wording wins
        ("Mary moved to the garden.", ["f3"]),
        ("Sandra is not in the kitchen.", ["f5"]),  # not also "Sandra is in the kitchen"
        ("Bill handed the milk to Jeff.", ["f7"]),  # word order decides between equal word sets
        ("The answer is garden.", []),
    ],
)
def test_babi_sentences(trace, want):
    assert cited(trace, BABI) == want


def test_sentences_keep_initials_and_split_lists():
    assert sentences("Thomas F. Mulledy was there. R.N. Upadhyaya too.\nnext") == [
        "thomas f mulledy was there",
        "r n upadhyaya too",
        "next",
    ]
    assert sentences("facts: ['Mary went to the garden.', 'John went to the kitchen.']") == [
        "facts",
        "mary went to the garden",
        "john went to the kitchen",
    ]


def test_stated_labels_skip_the_question_and_nested_phrases():
    q = "While X was working for Y, which employer did X work for during the same time period?"
    ex = _ex("cotempqa", q, ["X works for Y from 1990 to 1995."], label="overlap")
    assert stated_labels("Which employer did X work for during the same time period? The terms overlap.", ex) == [
        "overlap"
    ]
    assert stated_labels("The second job falls within the first: it is during it. It does not overlap.", ex) == [
        "during",
        "overlap",
    ]
    b = _ex("babi", "Where is Mary?", ["Mary went to the garden."], label="basic-coreference")
    assert stated_labels("The category of the question asked is: compound-coreference.", b) == ["compound-coreference"]
    assert freeform_trace("This is basic coreference, not counting.", b).label == "basic-coreference"
    assert (
        freeform_trace("This needs counting, not basic coreference.", b).label == "basic-coreference"
    )  # the gold first
    assert freeform_trace("Mary went to the garden.", b).label is None


@pytest.mark.parametrize(
    "output, want",
    [
        ("<think>Mary went.</think> <answer>['garden']</answer>", ("Mary went.", "<answer>['garden']</answer>")),
        ("reasoning here</think>garden", ("reasoning here", "garden")),
        ("I need facts: ['a'] <answer>['garden']</answer>", ("I need facts: ['a'] ", "<answer>['garden']</answer>")),
        (
            "label: x\nevidence: Mary went.\nanswer: garden",
            ("label: x\nevidence: Mary went.\n", "label: x\nevidence: Mary went.\nanswer: garden"),
        ),
    ],
)
def test_trace_and_answer(output, want):
    assert trace_and_answer(output) == want


def test_score_output_freeform_gives_the_usual_steps():
    ds = get_dataset("synthetic-temporal", size=8)
    ex = ds.load(None)[0]
    facts = " ".join(ex.texts(ex.evidence))
    out = f"<think>The two periods are {ex.label} here. {facts}</think>\n{list(ex.answers)!r}"
    row = score_output(ds, ex, out, freeform=True)
    assert row["label_correct"] and row["evidence"]["exact"] and row["trace_correct"] and row["answer"]["correct"]
    assert not score_output(ds, ex, out)["label_correct"]  # the parser finds no label sentence in free text


@pytest.mark.parametrize("name, source", [("cotempqa", "cotempqa"), ("babi", "babi/en")])
def test_agrees_with_the_parser_on_rule_based_traces(shared_data, name, source):
    """Rule-based traces of every condition and template, 150 examples: every step and the cited
    set agree with the parser on at least 98 % of traces (docs/scoring.md has the full
    measurement, bench/freeform_agreement.py)."""
    from tracekd.prepare import assign_splits

    ds = get_dataset(name)
    examples = random.Random(0).sample(assign_splits(ds.load(str(shared_data / source)), 42, 0.2), 150)
    got = agreement(rendered(ds, examples))
    assert got["traces"] == 150 * 5 * 2
    assert (
        all(got[f"{step}_agreement"] >= 0.98 for step in (m.step for m in metrics.steps()))
        and got["cited_set_agreement"] >= 0.98
    ), got


def test_hand_labelled_traces(shared_data):
    """70 real SmolLM2-135M traces labelled by hand (tests/fixtures/freeform/labels.jsonl): the
    counts behind the precision and recall in docs/scoring.md."""
    got = hand_labelled(fixture_examples(shared_data))
    # items cited: tp, fp, fn
    assert [got[p]["items"][k] for p in ("dev", "held-out") for k in ("tp", "fp", "fn")] == [27, 1, 0, 55, 3, 3]
    # per step on the held-out traces: tp, fp, fn, tn of "the step is right"
    steps = got["held-out"]["steps"]
    assert {s: [steps[s][k] for k in ("tp", "fp", "fn", "tn")] for s in steps} == {
        "label": [4, 0, 0, 46],
        "evidence": [1, 0, 1, 48],
        "anchor": [4, 1, 0, 34],
        "answer_fact": [7, 1, 1, 36],
        "trace": [0, 0, 0, 50],
    }
    assert [got["dev"]["label_stated"][k] for k in ("tp", "fp", "fn", "tn")] == [0, 0, 0, 20]
