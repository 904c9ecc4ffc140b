"""The free-form trace scorer: cited items, stated labels, and its agreement with the parser on
rule-based traces (where the parser gives the truth)."""

from __future__ import annotations

import random

import pytest

from tracekd.data import get_dataset
from tracekd.data.schema import ContextItem, Example
from tracekd.score.evaluate import score_output
from tracekd.score.freeform import cited, freeform_trace, sentences, stated_labels, trace_and_answer
from tracekd.score.steps import score_steps
from tracekd.traces.conditions import make_targets
from tracekd.traces.parse import parse
from tracekd.traces.render import render


def _ex(dataset, question, facts, label="", evidence=(), answers=("x",)):
    return Example(id="t/1", dataset=dataset, subset=label or "s", question=question,
                   context=tuple(ContextItem(f"f{i}", t) for i, t in enumerate(facts)), answers=answers,
                   label=label, evidence=tuple(evidence))


WALPOLE = _ex("cotempqa", "While Robert Walpole was holding the position of Chancellor of the Exchequer, which position did "
              "Robert Walpole hold during the same time period?", [
                  "Robert Walpole holds the position of Leader of the House of Commons from April 4, 1721 to February 6, 1742.",
                  "Robert Walpole holds the position of leader in September, 1742.",
                  "Robert Walpole holds the position of Chancellor of the Exchequer from April 4, 1721 to February 12, 1742.",
                  "Robert Walpole holds the position of Master of the Mint in October, 1742.",
              ], label="equal", evidence=("f0", "f2"))


def test_temporal_facts_need_their_entity_and_years():
    assert cited("He led the House of Commons as its Leader... Leader of the House of Commons from 1721 to 1742.", WALPOLE) == ["f0"]
    # the entity without the time is not a citation; the question's own entity needs the years too
    assert cited("He was Master of the Mint. He was also Chancellor of the Exchequer.", WALPOLE) == []
    assert cited("As Chancellor of the Exchequer (1721-1742) he ...", WALPOLE) == ["f2"]
    # "leader in 1742" is part of "Leader of the House of Commons ... 1742", not a citation of its own
    assert cited("Leader of the House of Commons from April 4, 1721 to February 6, 1742", WALPOLE) == ["f0"]
    assert cited("He was made leader in September 1742 and Master of the Mint in October 1742.", WALPOLE) == ["f1", "f3"]
    assert cited("Robert Walpole holds the position of Master of the Mimt in 1742", WALPOLE) == ["f3"]  # a typo


def test_shared_entities_are_not_required():
    ex = _ex("cotempqa", "While Chen Chu was a member of Chinese Youth Party, who was also a member of Chinese Youth Party at the same time?", [
        "Yu Shyi-kun is a member of the Chinese Youth Party from 1966 to 1975.",
        "Chen Chu is a member of the Chinese Youth Party from 1969 to 1979.",
        "Karin Binder is a member of the Chinese Youth Party in 1966.",
    ])
    assert cited("Yu Shyi-kun was in it from 1966 to 1975, overlapping Chen Chu (1969-1979).", ex) == ["f0", "f1"]


BABI = _ex("babi", "Where is the football?", [
    "Mary got the football there.", "Mary went back to the garden.", "John went to the kitchen.",
    "Mary moved to the garden.", "Sandra is in the kitchen.", "Sandra is not in the kitchen.",
    "Jeff gave the milk to Bill.", "Bill gave the milk to Jeff.",
])


@pytest.mark.parametrize("trace, want", [
    ("Mary picked up the football. Then she journeyed to the garden.", ["f0"]),  # "she": no Mary in that sentence
    ("Mary grabbed the football. Mary travelled to the garden.", ["f0", "f3"]),  # verbs of one class; the closest wording wins
    ("Mary moved to the garden.", ["f3"]),
    ("Sandra is not in the kitchen.", ["f5"]),  # not also "Sandra is in the kitchen"
    ("Bill handed the milk to Jeff.", ["f7"]),  # word order decides between equal word sets
    ("The answer is garden.", []),
])
def test_babi_sentences(trace, want):
    assert cited(trace, BABI) == want


def test_sentences_keep_initials_and_split_lists():
    assert sentences("Thomas F. Mulledy was there. R.N. Upadhyaya too.\nnext") == [
        "thomas f mulledy was there", "r n upadhyaya too", "next"]
    assert sentences("facts: ['Mary went to the garden.', 'John went to the kitchen.']") == [
        "facts", "mary went to the garden", "john went to the kitchen"]


def test_stated_labels_skip_the_question_and_nested_phrases():
    q = "While X was working for Y, which employer did X work for during the same time period?"
    ex = _ex("cotempqa", q, ["X works for Y from 1990 to 1995."], label="overlap")
    assert stated_labels("Which employer did X work for during the same time period? The terms overlap.", ex) == ["overlap"]
    assert stated_labels("The second job falls within the first: it is during it. It does not overlap.", ex) == ["during", "overlap"]
    b = _ex("babi", "Where is Mary?", ["Mary went to the garden."], label="basic-coreference")
    assert stated_labels("The category of the question asked is: compound-coreference.", b) == ["compound-coreference"]
    assert freeform_trace("This is basic coreference, not counting.", b).label == "basic-coreference"
    assert freeform_trace("This needs counting, not basic coreference.", b).label == "basic-coreference"  # the gold first
    assert freeform_trace("Mary went to the garden.", b).label is None


@pytest.mark.parametrize("output, want", [
    ("<think>Mary went.</think> <answer>['garden']</answer>", ("Mary went.", "<answer>['garden']</answer>")),
    ("reasoning here</think>garden", ("reasoning here", "garden")),
    ("I need facts: ['a'] <answer>['garden']</answer>", ("I need facts: ['a'] ", "<answer>['garden']</answer>")),
    ("label: x\nevidence: Mary went.\nanswer: garden", ("label: x\nevidence: Mary went.\n", "label: x\nevidence: Mary went.\nanswer: garden")),
])
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


def _agreement(examples, ds, conditions=("correct", "incorrect", "wrong_label", "wrong_evidence", "swapped")):
    labels = ds.label_space(examples)
    n = agree_label = agree_exact = agree_set = 0
    for condition in conditions:
        for template in ("paper", "tagged"):
            for ex, (trace, _) in zip(examples, make_targets(examples, condition, 0, labels)):
                text = render(trace, template, ds.label_sentence)
                truth, ours = score_steps(parse(text), ex), score_steps(freeform_trace(text, ex), ex)
                n += 1
                agree_label += truth["label_correct"] == ours["label_correct"]
                agree_exact += truth["evidence"]["exact"] == ours["evidence"]["exact"]
                agree_set += set(truth["evidence"]["matched"]) == set(ours["evidence"]["matched"])
    return agree_label / n, agree_exact / n, agree_set / n


@pytest.mark.parametrize("name, source", [("cotempqa", "cotempqa"), ("babi", "babi/en")])
def test_agrees_with_the_parser_on_rule_based_traces(shared_data, name, source):
    """Rule-based traces of every condition and template, 150 examples: label, evidence exact set
    and the cited set agree with the parser on at least 98 % of traces (docs/scoring.md has the
    full measurement)."""
    from tracekd.prepare import assign_splits

    ds = get_dataset(name)
    examples = random.Random(0).sample(assign_splits(ds.load(str(shared_data / source)), 42, 0.2), 150)
    label, exact, same_set = _agreement(examples, ds)
    assert label >= 0.98 and exact >= 0.98 and same_set >= 0.98, (label, exact, same_set)


def test_hand_labelled_traces(shared_data):
    """70 real SmolLM2-135M traces labelled by hand (tests/fixtures/freeform/labels.jsonl): the
    counts behind the precision and recall in docs/scoring.md."""
    import json
    from pathlib import Path

    here = Path(__file__).parent / "fixtures" / "freeform"
    examples = {**{e.id: e for e in get_dataset("cotempqa").load(str(shared_data / "cotempqa"))},
                **{e.id: e for e in get_dataset("babi").load(str(shared_data / "babi" / "en"))}}
    traces = {(r["set"], r["id"]): r["trace"] for r in map(json.loads, (here / "traces.jsonl").read_text().splitlines())}
    counts = {}
    for lab in map(json.loads, (here / "labels.jsonl").read_text().splitlines()):
        ex = examples[lab["id"]]
        trace = trace_and_answer(traces[(lab["set"], lab["id"])])[0]
        got, want = set(cited(trace, ex)), set(lab["cited"])
        said = ex.label in stated_labels(trace, ex)
        c = counts.setdefault(lab["part"], [0, 0, 0, 0, 0, 0, 0])
        for i, v in enumerate((len(got & want), len(got - want), len(want - got),
                               said and lab["label_stated"], said and not lab["label_stated"],
                               lab["label_stated"] and not said, not said and not lab["label_stated"])):
            c[i] += v
    # [cited: tp, fp, fn; states the gold label: tp, fp, fn, tn]
    assert counts == {"dev": [27, 1, 0, 0, 0, 0, 20], "held-out": [55, 3, 3, 4, 0, 0, 46]}
