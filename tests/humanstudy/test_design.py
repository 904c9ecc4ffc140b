"""`tracekd humanstudy create`: the balanced, seeded assignment, the wrong-step variants, refusals."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest

from humanstudy_helpers import ROOT, TYPES, make_sources, make_study, write_spec
from tracekd.errors import InputError
from tracekd.humanstudy.design import assign, williams
from tracekd.humanstudy.spec import load_spec, load_study


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("hs-sources"))


def _check_within(plans, types, n):
    cells = Counter()
    for plan in plans:
        items = [p for p in plan if p.attention is None]
        assert len(items) == n
        assert len({p.item for p in items}) == n  # no item twice
        assert set(Counter(p.type for p in items).values()) == {n // len(types)}  # every type equally often
        cells.update((p.item, p.type) for p in items)
        for block in range(n // len(types)):  # blocks of T pages, each type once: a Latin-square row
            assert sorted(p.type for p in items[block * len(types) : (block + 1) * len(types)]) == sorted(types)
    items = {i for i, _ in cells}
    assert set(cells.values()) == {len(plans) * n // (len(items) * len(types))}  # every item under every type equally
    assert len(cells) == len(items) * len(types)


@pytest.mark.parametrize(("items", "n", "participants"), [(12, 8, 8), (12, 4, 12), (40, 8, 40), (30, 12, 100)])
def test_within_design_is_balanced(items, n, participants):
    ids = [f"i{k}" for k in range(items)]
    plans, balance = assign(ids, list(TYPES), n, participants, "within", 0.5, 2, seed=3)
    assert len(plans) == participants
    _check_within(plans, TYPES, n)
    assert all(sum(p.attention is not None for p in plan) == 2 for plan in plans)
    assert participants % balance["cycle"] == 0
    # the verification items: the same number of wrong variants of each type for every participant
    for plan in plans:
        wrong = Counter(p.type for p in plan if p.wrong)
        assert len(set(wrong.values())) <= 1


def test_between_design_is_balanced():
    ids = [f"i{k}" for k in range(20)]
    plans, _ = assign(ids, list(TYPES), 5, 16, "between", 0.4, 0, seed=0)
    cells = Counter()
    for plan in plans:
        assert len({p.type for p in plan}) == 1 and len({p.item for p in plan}) == 5
        cells.update((p.item, p.type) for p in plan)
    assert set(cells.values()) == {1} and len(cells) == 20 * 4


def test_williams_square_rows_are_latin():
    for t in (2, 3, 4, 5):
        sq = williams(t)
        assert all(sorted(r) == list(range(t)) for r in sq)
        assert all(sorted(col) == list(range(t)) for col in zip(*sq))


def test_seeded_and_reproducible():
    ids = [f"i{k}" for k in range(12)]
    a = assign(ids, list(TYPES), 8, 8, "within", 0.5, 1, seed=1)
    assert a == assign(ids, list(TYPES), 8, 8, "within", 0.5, 1, seed=1)
    assert a != assign(ids, list(TYPES), 8, 8, "within", 0.5, 1, seed=2)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n": 6}, "6 items per participant cannot show 4 types equally often: choose a multiple of 4 (e.g. 4 or 8)"),
        ({"participants": 10}, "10 participants cannot be balanced"),
        ({"n": 16}, "only 12 items have a trace of every type"),
        ({"share": 0.1}, "gives no wrong trace"),
    ],
)
def test_a_design_that_cannot_be_balanced_is_refused(kwargs, needle):
    args = {"n": 8, "participants": 8, "share": 0.5} | kwargs
    ids = [f"i{k}" for k in range(12)]
    with pytest.raises(InputError, match=re.escape(needle)):
        assign(ids, list(TYPES), args["n"], args["participants"], "within", args["share"], 0, 0)


def test_create_writes_the_study_and_its_wrong_variants(sources, tmp_path):
    study, folder = make_study(sources, name=f"s-{tmp_path.name}")
    assert (folder / "study.yaml").is_file() and (folder / "study.db").is_file()
    again = load_study(folder)
    assert again.plans == study.plans and again.traces == study.traces
    _check_within(study.plans, TYPES, 8)
    kinds = Counter()
    for shown in study.traces:
        t, w = shown.trace.steps, shown.wrong.steps
        assert len(t) == len(w)
        diff = [i for i, (a, b) in enumerate(zip(t, w)) if a != b]
        assert diff == [shown.wrong.step - 1], (shown.type, t, w)  # exactly one known-wrong step
        kinds[shown.type, shown.wrong.kind] += 1
        if shown.type == "rule":
            assert shown.wrong.kind in ("wrong_label", "wrong_evidence")
        else:
            assert shown.wrong.kind == "swapped_fact"
    assert kinds["rule", "wrong_label"] and kinds["rule", "wrong_evidence"]


def test_the_answer_key_is_never_in_the_study_pages(sources, tmp_path):
    """The wrong step is recorded in the study file, never sent: tested in humanstudy/test_app.py."""
    study, _ = make_study(sources, name=f"s-{tmp_path.name}")
    assert any(p.wrong for plan in study.plans for p in plan)


def test_cli_refuses_with_one_line_and_writes_nothing(sources, tmp_path):
    spec = write_spec(sources, participants=10)
    out = tmp_path / "study"
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "humanstudy", "create", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert "participants: 10 participants cannot be balanced" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_spec_errors_name_the_key(sources, tmp_path):
    path = write_spec(sources, desing="within")
    with pytest.raises(InputError, match=r"spec.yaml: desing: unknown key"):
        load_spec(path)
    path = write_spec(sources, types={"bad name!": {"data": "rule"}})
    with pytest.raises(InputError, match="types: type name 'bad name!'"):
        load_spec(path)


def test_a_second_create_in_the_same_folder_is_refused(sources, tmp_path):
    make_study(sources, name=f"s-{tmp_path.name}")
    with pytest.raises(InputError, match="a study is already here"):
        make_study(sources, name=f"s-{tmp_path.name}")


def test_a_type_from_model_outputs(sources, tmp_path):
    """Model outputs from a run (JSONL id, output) on a prepared folder's examples: parsed into the
    rule-based steps when the output has them, shown as free text when not."""
    import json

    recs = [json.loads(line) for line in (sources / "rule" / "test.jsonl").open()]
    preds = tmp_path / "preds.jsonl"
    with preds.open("w") as f:
        for i, r in enumerate(recs):
            out = r["completion"][0]["content"] if i % 2 else f"I think it is {r['answers'][0]}. Done."
            f.write(json.dumps({"id": r["id"], "output": out}) + "\n")
    study, _ = make_study(
        sources,
        name=f"s-{tmp_path.name}",
        types={"rule": {"data": "rule"}, "model:smollm2": {"data": "rule", "predictions": str(preds)}},
        participants=6,
        items_per_participant=4,
    )
    shown = {t.item: t for t in study.traces if t.type == "model:smollm2"}
    by_id = {r["id"]: i for i, r in enumerate(recs)}
    for item, t in shown.items():
        if by_id[item] % 2:
            assert t.trace.steps[0].startswith("The temporal relation") and t.wrong.kind in (
                "wrong_label",
                "wrong_evidence",
            )
        else:
            assert t.trace.steps == ["I think it is " + recs[by_id[item]]["answers"][0] + ".", "Done."]
            assert t.wrong.kind == "swapped_fact"
