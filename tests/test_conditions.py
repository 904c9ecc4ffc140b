"""SFT conditions: what each perturbs, and that the perturbations are seeded."""

from __future__ import annotations

import pytest

from tracekd.data import get_dataset
from tracekd.prepare import assign_splits
from tracekd.traces.conditions import CONDITIONS, make_targets, wrong_evidence


@pytest.fixture(scope="module")
def temporal():
    ds = get_dataset("synthetic-temporal", size=200)
    return ds, assign_splits(ds.load(None), 42, 0.2)


def _check_incorrect(examples, labels, seed):
    targets = make_targets(examples, "incorrect", seed, labels)
    for ex, (trace, pert) in zip(examples, targets):
        assert trace.label != ex.label and trace.label in labels
        used = set(pert["evidence"])
        assert not used & (set(ex.evidence) | set(ex.anchor) | set(ex.answer_facts))
        pool = [c for c in ex.context if c.id not in set(ex.evidence) | set(ex.anchor) | set(ex.answer_facts)]
        assert len(used) == min(max(len(ex.evidence), 1), len(pool))
        assert trace.evidence == tuple(ex.texts(pert["evidence"]))
        assert trace.answers == ex.answers
    return targets


def test_incorrect_on_synthetic(temporal):
    ds, exs = temporal
    targets = _check_incorrect(exs, ds.label_space(exs), 0)
    # synthetic answers are unique objects: no wrong evidence item even mentions one
    assert not any(a in t for ex, (trace, _) in zip(exs, targets) for a in ex.answers for t in trace.evidence)


def test_incorrect_on_real_cotempqa(cotempqa_examples):
    targets = _check_incorrect(cotempqa_examples, ("equal", "overlap", "during", "mix"), 1)
    # CoTempQA contexts always have enough other facts: the size always equals the gold's
    assert all(len(p["evidence"]) == len(ex.evidence) for ex, (_, p) in zip(cotempqa_examples, targets))


def test_incorrect_on_real_babi_and_msmarco(babi_examples, msmarco_examples):
    _check_incorrect(babi_examples[:4000], tuple(get_dataset("babi").labels), 2)
    _check_incorrect(msmarco_examples, tuple(get_dataset("msmarco").labels), 2)


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
