"""SFT conditions: what each perturbs, and that the perturbations are seeded."""

from __future__ import annotations

import pytest
from independent import msmarco_raw

from tracekd.data import ContextItem, Example, get_dataset
from tracekd.prepare import assign_splits
from tracekd.traces.conditions import CONDITIONS, make_targets, wrong_evidence


@pytest.fixture(scope="module")
def temporal():
    ds = get_dataset("synthetic-temporal", size=200)
    return ds, assign_splits(ds.load(None), 42, 0.2)


def _check_incorrect(examples, labels, seed):
    """Invariants of every `incorrect` target; the number of wrong items is checked per dataset
    (below) and on hand-made examples (test_wrong_evidence_on_hand_made_examples)."""
    targets = make_targets(examples, "incorrect", seed, labels)
    for ex, (trace, pert) in zip(examples, targets):
        assert trace.label != ex.label and trace.label in labels
        used = pert["evidence"]
        assert len(set(used)) == len(used) <= max(len(ex.evidence), 1)
        assert not set(used) & (set(ex.evidence) | set(ex.anchor) | set(ex.answer_facts))
        assert trace.evidence == tuple(ex.texts(used))
        assert trace.answers == ex.answers
    return targets


def _example(n_context, evidence, anchor=(), answer_facts=()):
    ctx = tuple(ContextItem(f"c{i}", f"Sentence number {i} of the story.") for i in range(n_context))
    return Example("h/1", "synthetic-babi", "qa1", "Where?", ctx, ("x",), label="single-supporting-fact",
                   evidence=evidence, anchor=anchor, answer_facts=answer_facts)


def test_wrong_evidence_on_hand_made_examples():
    # 2 gold items (one also the anchor, another answer-bearing item outside the gold): 2 wrong
    # items, from the three free ones, every pair drawn over enough seeds
    ex = _example(6, ("c1", "c3"), anchor=("c1",), answer_facts=("c3", "c4"))
    draws = {wrong_evidence(ex, seed) for seed in range(300)}
    assert draws == {("c0", "c2"), ("c0", "c5"), ("c2", "c5")}
    # no gold evidence (MS MARCO without an answer): still one wrong item
    assert {wrong_evidence(_example(3, ()), seed) for seed in range(100)} == {("c0",), ("c1",), ("c2",)}
    # three gold items and exactly three free ones: all three
    assert wrong_evidence(_example(6, ("c0", "c2", "c4")), 7) == ("c1", "c3", "c5")


def test_incorrect_on_synthetic(temporal):
    ds, exs = temporal
    targets = _check_incorrect(exs, ds.label_space(exs), 0)
    # synthetic answers are unique objects: no wrong evidence item even mentions one
    assert not any(a in t for ex, (trace, _) in zip(exs, targets) for a in ex.answers for t in trace.evidence)


def test_incorrect_on_real_cotempqa(cotempqa_examples):
    targets = _check_incorrect(cotempqa_examples, ("equal", "overlap", "during", "mix"), 1)
    # CoTempQA contexts always have enough other facts: the size always equals the gold's
    assert all(len(p["evidence"]) == len(ex.evidence) for ex, (_, p) in zip(cotempqa_examples, targets))


def test_incorrect_on_real_babi_and_msmarco(babi_examples, msmarco_examples, shared_data):
    _check_incorrect(babi_examples[:4000], tuple(get_dataset("babi").labels), 2)
    targets = _check_incorrect(msmarco_examples, tuple(get_dataset("msmarco").labels), 2)
    # a query whose raw record has at least as many unselected (non-empty) passages as selected
    # ones (and at least one) gets as many wrong passages as selected ones: 199 of the 200
    raw = {f"msmarco/{r['query_id']}": r["passages"] for r in msmarco_raw(shared_data)}
    full = 0
    for ex, (_, pert) in zip(msmarco_examples, targets):
        selected = sum(raw[ex.id]["is_selected"])
        unselected = sum(bool(t.strip()) for t in raw[ex.id]["passage_text"]) - selected
        if unselected >= max(selected, 1):
            assert len(pert["evidence"]) == max(selected, 1), ex.id
            full += 1
    assert full >= 199


def test_seed_repeats_and_changes(temporal):
    ds, exs = temporal
    labels = ds.label_space(exs)
    a = make_targets(exs, "incorrect", 0, labels)
    assert a == make_targets(exs, "incorrect", 0, labels)
    b = make_targets(exs, "incorrect", 1, labels)
    assert sum(x != y for x, y in zip(a, b)) > len(exs) // 2
    # choices do not depend on which other examples are present
    assert make_targets(exs[5:], "incorrect", 0, labels) == a[5:]


def test_ablations_compose_into_incorrect(temporal):
    ds, exs = temporal
    labels = ds.label_space(exs)
    inc = make_targets(exs, "incorrect", 3, labels)
    wl = make_targets(exs, "wrong_label", 3, labels)
    we = make_targets(exs, "wrong_evidence", 3, labels)
    for ex, (ti, _), (tl, _), (te, _) in zip(exs, inc, wl, we):
        assert (tl.label, tl.evidence) == (ti.label, tuple(ex.texts(ex.evidence)))
        assert (te.label, te.evidence) == (ex.label, ti.evidence)


def test_swapped_and_answer_only_and_correct(temporal):
    ds, exs = temporal
    labels = ds.label_space(exs)
    by_id = {ex.id: ex for ex in exs}
    for ex, (trace, pert) in zip(exs, make_targets(exs, "swapped", 0, labels)):
        other = by_id[pert["swapped_with"]]
        assert other.label != ex.label and trace.label == other.label
        assert trace.evidence == tuple(other.texts(other.evidence)) and trace.answers == ex.answers
    for ex, (trace, pert) in zip(exs, make_targets(exs, "answer_only", 0, labels)):
        assert (trace.label, trace.evidence, trace.answers, pert) == (None, None, ex.answers, None)
    for ex, (trace, pert) in zip(exs, make_targets(exs, "correct", 0, labels)):
        assert (trace.label, trace.evidence, trace.answers, pert) == (ex.label, tuple(ex.texts(ex.evidence)), ex.answers, None)
    assert set(CONDITIONS) == {"answer_only", "correct", "incorrect", "wrong_label", "wrong_evidence", "swapped"}


def test_wrong_evidence_with_small_context():
    ex = get_dataset("synthetic-babi", size=1).load(None)[0]
    small = ex.with_(context=ex.context[:2], evidence=(ex.context[0].id,), answer_facts=(ex.context[0].id,))
    assert wrong_evidence(small, 0) == (ex.context[1].id,)
    tiny = small.with_(context=ex.context[:1])
    assert wrong_evidence(tiny, 0) == ()
