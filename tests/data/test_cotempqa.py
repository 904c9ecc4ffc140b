"""CoTempQA: the choice among several facts matching the question's anchor clause, on small
hand-made records (the real cases, overlap/134, mix/111 and mix/177, are in the gold fixture)."""

from __future__ import annotations

import json
from collections import Counter

from independent import cotempqa_raw, read_cotempqa
from tracekd.data import get_dataset
from tracekd.data.cotempqa import fits_label, parse_fact, resolve_anchor
from tracekd.data.schema import ContextItem

POSITION_Q = (
    "While A was holding the position of president, which employer did A work for within the same time interval?"
)


def _facts(*texts):
    return [parse_fact(ContextItem(f"f{i}", t)) for i, t in enumerate(texts)]


def _ids(facts):
    return [f.id for f in facts]


def test_fits_label_reads_each_answer_against_one_anchor():
    anchor, inside, partial, same, apart = _facts(
        "A holds the position of president from 1990 to 2000.",
        "A works for X from 1992 to 1995.",
        "A works for Y from 1995 to 2005.",
        "A works for Z from 1990 to 2000.",
        "A works for W in 1980.",
    )
    assert fits_label("during", anchor, [[inside]]) and not fits_label("overlap", anchor, [[inside]])
    assert fits_label("overlap", anchor, [[partial]]) and fits_label("equal", anchor, [[same]])
    assert fits_label("overlap", anchor, [[inside, partial]])  # one fact in the relation suffices
    assert not fits_label("overlap", anchor, [[partial], [inside]])  # ... for every answer
    assert not fits_label("during", anchor, [[inside], []])  # an answer without a fact does not fit
    assert fits_label("mix", anchor, [[inside], [partial]])  # two relations
    assert not fits_label("mix", anchor, [[inside], [inside]])  # one relation is not a mix
    assert not fits_label("mix", anchor, [[inside], [partial], [apart]])  # every answer must co-occur


def test_the_candidate_the_answers_cooccur_with_in_the_labelled_relation_is_the_anchor():
    # overlap/134: the answer overlaps the second "president" fact, not the first
    facts = _facts(
        "A holds the position of president from 1973 to 1977.",
        "A works for X from 1981 to 2001.",
        "A holds the position of president from 1974 to 1999.",
    )
    anchors, by_answer, ambiguous = resolve_anchor(POSITION_Q, "overlap", ("X",), facts)
    assert (_ids(anchors), [_ids(b) for b in by_answer], ambiguous) == (["f2"], [["f1"]], False)
    # the same facts labelled `during`: neither candidate gives it, so both stay, flagged
    anchors, by_answer, ambiguous = resolve_anchor(POSITION_Q, "during", ("X",), facts)
    assert (_ids(anchors), [_ids(b) for b in by_answer], ambiguous) == (["f0", "f2"], [["f1"]], True)


def test_both_candidates_fitting_keeps_both_and_flags_it():
    facts = _facts(
        "A holds the position of president from 1990 to 2000.",
        "A holds the position of president from 1980 to 2010.",
        "A works for X from 1992 to 1995.",
    )
    anchors, by_answer, ambiguous = resolve_anchor(POSITION_Q, "during", ("X",), facts)
    assert (_ids(anchors), [_ids(b) for b in by_answer], ambiguous) == (["f0", "f1"], [["f2"]], True)


def test_a_candidate_that_is_not_the_anchor_can_state_the_answer():
    # mix/111: "president" is an answer; with f1 as the anchor, f0 states it (overlap) and f2 is
    # during = mix; with f0 as the anchor both answers would overlap
    q = "While A was holding the position of president, which position did A hold simultaneously?"
    facts = _facts(
        "A holds the position of president from 1903 to 1908.",
        "A holds the position of president from 1896 to 1906.",
        "A holds the position of deputy from November 12, 1889 to October 22, 1908.",
    )
    anchors, by_answer, ambiguous = resolve_anchor(q, "mix", ("deputy", "president"), facts)
    assert (_ids(anchors), [_ids(b) for b in by_answer], ambiguous) == (["f1"], [["f2"], ["f0"]], False)


def test_retrieve_reports_the_choice_and_the_ambiguity(tmp_path):
    records = [
        {
            "index": 0,
            "question": POSITION_Q,
            "answer": ["X"],
            "facts": [
                "A holds the position of president from 1973 to 1977.",
                "A works for X from 1981 to 2001.",
                "A holds the position of president from 1974 to 1999.",
            ],
        },
        {
            "index": 1,
            "question": POSITION_Q,
            "answer": ["X"],
            "facts": [
                "A holds the position of president from 1990 to 2000.",
                "A works for X from 1992 to 1995.",
                "A holds the position of president from 1991 to 1999.",
            ],
        },
    ]
    path = tmp_path / "overlap.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    resolved, ambiguous = get_dataset("cotempqa").load(str(path))
    assert (resolved.anchor, resolved.answer_facts, resolved.evidence, resolved.flags) == (
        ("f2",),
        ("f1",),
        ("f1", "f2"),
        (),
    )
    # neither candidate overlaps X (1992-1995 lies inside both): both kept, flagged, and the label
    # contradicts the dates
    assert (ambiguous.anchor, ambiguous.evidence) == (("f0", "f2"), ("f0", "f1", "f2"))
    assert ambiguous.flags == ("ambiguous_anchor", "label_contradicts_dates")


def test_labels_the_dates_do_not_give_read_independently(cotempqa_examples, shared_data):
    """Per example, `label_contradicts_dates` is exactly "the anchor does not fit the label" of
    tests/independent.py for `equal`, `overlap` and `during` (76: 61 overlap, 15 during); `mix` is
    not flagged, although 25 `mix` examples' answers all stand in one relation to the anchor."""
    raw = cotempqa_raw(shared_data)
    unfit = Counter()
    for ex in cotempqa_examples:
        r = read_cotempqa(raw[ex.id], ex.subset)
        unfit[ex.subset] += not r.gives_label
        if ex.subset != "mix":
            assert ("label_contradicts_dates" in ex.flags) == (not r.gives_label), ex.id
    assert unfit == {"overlap": 61, "during": 15, "mix": 25, "equal": 0}
