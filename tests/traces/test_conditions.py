"""SFT conditions: what each perturbs, and that the perturbations are seeded."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cotempqa_like import FACTS, cotempqa_like
from independent import msmarco_raw
from tracekd.data import ContextItem, Example, get_dataset, target_answers
from tracekd.prepare import assign_splits
from tracekd.traces.conditions import CONDITIONS, make_targets, wrong_evidence


@pytest.fixture(scope="module")
def temporal():
    ds = get_dataset("synthetic-temporal", size=200)
    return ds, assign_splits(ds.load(None), 42, 0.2)


def _words(text):
    """Plain word sequence, padded, for phrase containment."""
    return " " + " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split()) + " "


def _key(text):
    return " ".join(text.casefold().split()).rstrip(".")


def _bad_distractor(ex, text):
    """Why `text` must not be wrong evidence for `ex` (None: it may be)."""
    gold = {_key(t) for t in ex.texts(tuple(ex.evidence) + tuple(ex.anchor) + tuple(ex.answer_facts))}
    if _key(text) in gold:
        return "repeats gold text"
    if any(_words(a).strip() and _words(a) in _words(text) for a in ex.answers):
        return "states an answer"
    return None


def _check_incorrect(examples, labels, seed):
    """Every wrong evidence list: non-empty, of the gold's size where the context allows, no
    gold / anchor / answer-bearing item or text, no answer; borrowed only when the example's
    own context has no eligible item, and then from the same dataset and subset."""
    by_id = {ex.id: ex for ex in examples}
    targets = make_targets(examples, "incorrect", seed, labels)
    borrowed = 0
    for ex, (trace, pert) in zip(examples, targets):
        assert trace.label != ex.label and trace.label in labels
        assert trace.answers == target_answers(ex)
        assert trace.evidence, ex.id
        assert not [(t, why) for t in trace.evidence if (why := _bad_distractor(ex, t))], ex.id
        assert len(set(map(_key, trace.evidence))) == len(trace.evidence)
        protected = set(ex.evidence) | set(ex.anchor) | set(ex.answer_facts)
        own = [c for c in ex.context if c.id not in protected and _bad_distractor(ex, c.text) is None]
        source = by_id[pert.get("evidence_from", ex.id)]
        assert trace.evidence == tuple(source.texts(pert["evidence"]))
        if source is ex:
            assert not set(pert["evidence"]) & protected
            assert len(trace.evidence) == min(max(len(ex.evidence), 1), len({_key(c.text) for c in own}))
        else:
            borrowed += 1
            assert own == [] and (source.dataset, source.subset) == (ex.dataset, ex.subset)
    return targets, borrowed


def _example(n_context, evidence, anchor=(), answer_facts=()):
    ctx = tuple(ContextItem(f"c{i}", f"Sentence number {i} of the story.") for i in range(n_context))
    return Example(
        "h/1",
        "synthetic-babi",
        "qa1",
        "Where?",
        ctx,
        ("x",),
        label="single-supporting-fact",
        evidence=evidence,
        anchor=anchor,
        answer_facts=answer_facts,
    )


def _ids(wrong):
    return tuple(c.id for c in wrong.items)


def test_wrong_evidence_on_hand_made_examples():
    # 2 gold items (one also the anchor, another answer-bearing item outside the gold): 2 wrong
    # items, from the three free ones, every pair drawn over enough seeds
    ex = _example(6, ("c1", "c3"), anchor=("c1",), answer_facts=("c3", "c4"))
    draws = {_ids(wrong_evidence(ex, seed)) for seed in range(300)}
    assert draws == {("c0", "c2"), ("c0", "c5"), ("c2", "c5")}
    # no gold evidence (MS MARCO without an answer): still one wrong item
    assert {_ids(wrong_evidence(_example(3, ()), seed)) for seed in range(100)} == {("c0",), ("c1",), ("c2",)}
    # three gold items and exactly three free ones: all three
    assert _ids(wrong_evidence(_example(6, ("c0", "c2", "c4")), 7)) == ("c1", "c3", "c5")


def test_incorrect_on_synthetic(temporal):
    ds, exs = temporal
    assert _check_incorrect(exs, ds.label_space(exs), 0)[1] == 0


def _per_split(examples, labels, seed):
    out = 0
    for split in ("train", "test"):
        out += _check_incorrect([ex for ex in examples if ex.split == split], labels, seed)[1]
    return out


def test_incorrect_on_real_cotempqa(cotempqa_examples):
    exs = assign_splits(cotempqa_examples, 42, 0.2)
    assert _per_split(exs, ("equal", "overlap", "during", "mix"), 1) > 0
    # the reproduction: the old rule cited "... Leader of Fianna Fáil ..." for the answer "Fianna Fáil"
    ex = next(e for e in exs if e.id == "cotempqa/during/2484")
    part = [e for e in exs if e.split == ex.split]
    trace = dict(zip([e.id for e in part], make_targets(part, "incorrect", 0, ("equal", "overlap", "during", "mix"))))[
        ex.id
    ][0]
    assert not any("Fianna Fáil" in t for t in trace.evidence)


def test_incorrect_on_all_real_babi_and_msmarco(babi_examples, msmarco_examples):
    """All of ../shared: bAbI qa17 stories consist of their supporting facts only, so its wrong
    evidence is always borrowed (the old rule gave an empty list)."""
    borrowed = _per_split(babi_examples, tuple(get_dataset("babi").labels), 2)
    assert borrowed >= 2000  # qa17: 1000 train + 1000 test
    _per_split(assign_splits(msmarco_examples, 42, 0.2), tuple(get_dataset("msmarco").labels), 2)


def test_wrong_evidence_never_repeats_gold_text(babi_examples):
    """qa2 train 555 mentions "Mary discarded the milk." twice, once as a supporting fact: the
    other copy is not a wrong fact."""
    ex = next(e for e in babi_examples if e.id == "babi/qa2/train/555")
    assert ex.context[-1].text == "Mary discarded the milk." and "Mary discarded the milk." in ex.texts(ex.evidence)
    for seed in range(20):
        assert "Mary discarded the milk." not in [c.text for c in wrong_evidence(ex, seed).items]


def test_incorrect_size_on_real_msmarco(msmarco_examples, shared_data):
    targets, _ = _check_incorrect(msmarco_examples, tuple(get_dataset("msmarco").labels), 2)
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
        assert (trace.label, trace.evidence, trace.answers, pert) == (
            ex.label,
            tuple(ex.texts(ex.evidence)),
            ex.answers,
            None,
        )


def test_targets_state_one_of_several_alternative_answers(msmarco_examples):
    """MS MARCO's gold answers are alternatives: a target naming both matches neither."""
    ex = next(e for e in msmarco_examples if e.id == "msmarco/64055")
    assert len(ex.answers) == 2
    for condition in CONDITIONS:
        ((trace, _),) = (
            make_targets([ex], condition, 0, get_dataset("msmarco").labels)
            if condition != "swapped"
            else [(None, None)]
        )
        if trace is not None:
            assert trace.answers == ex.answers[:1]
    assert set(CONDITIONS) == {"answer_only", "correct", "incorrect", "wrong_label", "wrong_evidence", "swapped"}


def test_wrong_evidence_with_small_context():
    ex = get_dataset("synthetic-babi", size=1).load(None)[0]
    gold = ex.context[0]
    other = next(c for c in ex.context[1:] if c.text != gold.text and not any(a in c.text for a in ex.answers))
    small = ex.replace(context=(gold, other), evidence=(gold.id,), anchor=(), answer_facts=(gold.id,))
    assert wrong_evidence(small, 0).items == (other,)
    # nothing eligible here: taken from a donor of the same subset, the same for the same seed
    tiny = small.replace(context=(gold,))
    donors = [small.replace(id="d1"), small.replace(id="d2")]
    got = wrong_evidence(tiny, 0, donors)
    assert got.items == (other,) and got.source in ("d1", "d2") and got == wrong_evidence(tiny, 0, donors[::-1])
    assert wrong_evidence(tiny, 0).items == ()  # no donor at all: empty, and counted in the manifest


def test_wrong_evidence_never_cites_gold_evidence_that_is_not_anchor_or_answer_fact():
    """Bug: wrong evidence protected only the anchor and answer-bearing facts, which under the
    tracekd rule is the whole gold evidence, but under ir_rule=paper misses the over-matched facts
    (here f2, "vice senator")."""
    ex = cotempqa_like(("f1", "f2"))  # the paper's rule: every fact containing "senator"
    drawn = {c.id for seed in range(200) for c in wrong_evidence(ex, seed).items}
    assert drawn == {"f3", "f4", "f5"}  # every non-gold fact is drawn, and nothing else
    for condition in ("wrong_evidence", "incorrect"):
        for seed in range(50):
            ((trace, pert),) = make_targets([ex], condition, seed, ("equal", "overlap", "during", "mix"))
            assert len(pert["evidence"]) == 2 and not set(trace.evidence) & set(FACTS[:3])


def test_wrong_evidence_under_the_papers_rule_on_real_cotempqa(tmp_path, shared_data):
    """The same bug end to end: `prepare --ir-rule paper` with perturbed conditions."""
    over_matched = 0
    for condition in ("wrong_evidence", "incorrect"):
        out = tmp_path / condition
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracekd",
                "prepare",
                "--dataset",
                "cotempqa",
                "--source",
                shared_data / "cotempqa",
                "--ir-rule",
                "paper",
                "--condition",
                condition,
                "--out",
                out,
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        for split in ("train", "test"):
            for line in (out / f"{split}.jsonl").open():
                rec = json.loads(line)
                text = {c["id"]: c["text"] for c in rec["context"]}
                gold = {text[i] for i in rec["evidence"]}
                # (it may be empty: under this rule every fact of mix/96 contains "Holy Roman Emperor")
                assert not gold & set(rec["target"]["evidence"]), rec["id"]
                over_matched += bool(set(rec["evidence"]) - set(rec["anchor"]) - set(rec["answer_facts"]))
    assert over_matched > 0  # the paper's rule does over-match, so the protection is exercised
