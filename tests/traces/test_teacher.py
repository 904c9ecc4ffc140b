"""Teacher conditions and the teacher-correct restriction, prepared from a teacher folder (its
teacher.jsonl written here by hand: what `tracekd teach` writes is tested against a real server
in teach/test_teach_server.py)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracekd.data.base import LABEL_SENTENCE_CATEGORY as CATEGORY
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.layout import TEACHER_TRACES
from tracekd.prepare import load, prepare
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace, render
from tracekd.traces.teacher import (
    RESTRICT,
    check_condition,
    derangement,
    is_teacher_condition,
    needs_teacher,
    split_condition,
)

OPTS = DatasetConfig(name="synthetic-babi", size=60, limit_train=20, limit_test=10)


@pytest.fixture()
def teacher_dir(tmp_path):
    """Every third example rejected; the rest with trace, summary and explanation naming the example."""
    loaded = load(OPTS)
    rows = []
    for split in ("train", "test"):
        for i, ex in enumerate(loaded.examples[split]):
            ok = i % 3 != 0
            rows.append(
                {
                    "id": ex.id,
                    "split": split,
                    "subset": ex.subset,
                    "accepted": ok,
                    "tried": 1,
                    "sample": 0 if ok else None,
                    "trace": f"T<{ex.id}> </think> <answer>x</answer>" if ok else None,
                    "summary": f"S<{ex.id}>" if ok else None,
                    "posthoc": f"P<{ex.id}>" if ok else None,
                }
            )
    (tmp_path / "teach").mkdir()
    (tmp_path / "teach" / TEACHER_TRACES).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "teach", {r["id"]: r for r in rows}


def _records(folder, split="train"):
    return [json.loads(x) for x in (folder / f"{split}.jsonl").read_text().splitlines()]


def test_condition_names():
    assert split_condition("correct@teacher_correct") == ("correct", True)
    assert split_condition("teacher") == ("teacher", False)
    assert needs_teacher("answer_only" + RESTRICT) and needs_teacher("teacher_summary") and not needs_teacher("correct")
    assert is_teacher_condition("teacher_posthoc") and not is_teacher_condition("correct@teacher_correct")
    check_condition("baseline@teacher_correct", extra=("baseline",))
    for bad in ("teacher@x", "correct@teacher", "r1"):
        with pytest.raises(InputError, match="unknown condition"):
            check_condition(bad)


@given(st.integers(2, 40), st.integers(0, 10**6))
def test_derangement_moves_everyone(n, seed):
    perm = derangement(n, random.Random(seed))
    assert sorted(perm) == list(range(n)) and all(i != p for i, p in enumerate(perm))
    assert perm == derangement(n, random.Random(seed))


def test_derangement_is_uniform():
    """All 9 derangements of 4 items, each about 1/9 of 9,000 draws (chi-square, 8 df, p > 0.001)."""
    from scipy.stats import chisquare

    rng = random.Random(1)
    counts = Counter(tuple(derangement(4, rng)) for _ in range(9000))
    assert len(counts) == 9
    assert chisquare(list(counts.values())).pvalue > 0.001


def test_teacher_conditions_keep_the_teacher_correct_subset(tmp_path, teacher_dir):
    folder, rows = teacher_dir
    conds = ["teacher", "teacher_summary", "teacher_posthoc", "teacher_swapped", "correct@teacher_correct", "correct"]
    manifests = prepare(OPTS, conds, "tagged", 0, tmp_path / "out", folder)
    kept = {i for i, r in rows.items() if r["accepted"]}
    for cond in conds:
        for split in ("train", "test"):
            recs = _records(tmp_path / "out" / cond, split)
            ids = {r["id"] for r in recs}
            if cond == "correct":
                assert ids == {i for i, r in rows.items() if r["split"] == split}
            else:
                assert ids == {i for i in kept if rows[i]["split"] == split}, (cond, split)
    assert manifests["teacher"]["teacher"]["kept"] == {
        s: sum(rows[i]["split"] == s for i in kept) for s in ("train", "test")
    }
    assert "teacher" not in manifests["correct"]
    for rec in _records(tmp_path / "out" / "teacher"):
        # tags inside the reasoning are dropped: the parser still finds the gold answer
        assert (
            rec["completion"][0]["content"] == f"<think>T<{rec['id']}>  x</think> <answer>{rec['answers']!r}</answer>"
        )
        assert parse(rec["completion"][0]["content"], CATEGORY).answers == tuple(rec["answers"])
        assert rec["target"]["reasoning"] == rows[rec["id"]]["trace"]
    for cond, letter in (("teacher_summary", "S"), ("teacher_posthoc", "P")):
        assert all(
            r["completion"][0]["content"].startswith(f"<think>{letter}<{r['id']}>")
            for r in _records(tmp_path / "out" / cond)
        )
    swapped = _records(tmp_path / "out" / "teacher_swapped")
    partners = [r["perturbation"]["swapped_with"] for r in swapped]
    assert all(p != r["id"] and p in kept for p, r in zip(partners, swapped))
    assert sorted(partners) == sorted(r["id"] for r in swapped)  # a permutation: every trace used once
    by_id = {r["id"]: r for r in swapped}
    assert all(
        by_id[r["id"]]["completion"][0]["content"].startswith(f"<think>T<{p}>") for p, r in zip(partners, swapped)
    )
    same = prepare(OPTS, "teacher_swapped", "tagged", 0, tmp_path / "again", folder)
    assert same["teacher_swapped"]["files"] == manifests["teacher_swapped"]["files"]  # same seed, same bytes
    other = prepare(OPTS, "teacher_swapped", "tagged", 1, tmp_path / "seed1", folder)
    assert other["teacher_swapped"]["files"] != manifests["teacher_swapped"]["files"]


def test_swapped_stays_within_the_subset_when_it_can(tmp_path, teacher_dir):
    folder, rows = teacher_dir
    prepare(OPTS, "teacher_swapped", "paper", 3, tmp_path / "out", folder)
    for split in ("train", "test"):
        recs = _records(tmp_path / "out", split)
        by_subset = Counter(r["subset"] for r in recs)
        within = all(by_subset[s] >= 2 for s in by_subset)
        for r in recs:
            partner = rows[r["perturbation"]["swapped_with"]]
            assert partner["id"] != r["id"]
            if within:
                assert partner["subset"] == r["subset"]


def test_errors_name_what_is_missing(tmp_path, teacher_dir):
    folder, _rows = teacher_dir
    with pytest.raises(InputError, match=r"needs teacher traces: --teacher"):
        prepare(OPTS, "teacher", "paper", 0, tmp_path / "a")
    with pytest.raises(InputError, match=r"no teacher.jsonl in the teacher folder"):
        prepare(OPTS, "teacher", "paper", 0, tmp_path / "a", tmp_path)
    lines = (folder / TEACHER_TRACES).read_text().splitlines()
    (folder / TEACHER_TRACES).write_text(
        "\n".join(json.dumps({**json.loads(x), "summary": None}) for x in lines) + "\n"
    )
    with pytest.raises(InputError, match=r"needs the teacher's summary .* with --summary"):
        prepare(OPTS, "teacher_summary", "paper", 0, tmp_path / "b", folder)
    (folder / TEACHER_TRACES).write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(InputError, match=r"1 example\(s\) have no teacher record"):
        prepare(OPTS, "teacher", "paper", 0, tmp_path / "c", folder)
    (folder / TEACHER_TRACES).write_text(
        "".join(json.dumps({**json.loads(x), "accepted": False}) + "\n" for x in lines)
    )
    with pytest.raises(InputError, match=r"kept no train example"):
        prepare(OPTS, "answer_only@teacher_correct", "paper", 0, tmp_path / "d", folder)
    assert not any((tmp_path / d).exists() for d in "abcd")  # nothing half-written


def test_prepare_cli_takes_a_teacher_folder(tmp_path, teacher_dir):
    folder, rows = teacher_dir
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "prepare",
            "--dataset",
            "synthetic-babi",
            "--size",
            "60",
            "--limit-train",
            "20",
            "--limit-test",
            "10",
            "--condition",
            "teacher",
            "--teacher",
            str(folder),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    kept_train = sum(1 for x in rows.values() if x["accepted"] and x["split"] == "train")
    assert f"{kept_train} train" in r.stdout
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "prepare",
            "--dataset",
            "synthetic-babi",
            "--size",
            "60",
            "--condition",
            "teacher@r1",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2 and "unknown condition 'teacher@r1'" in r.stderr


def test_render_reasoning_is_one_form_in_both_templates():
    t = Trace(None, None, ("garden",), "Mary went <answer>there</answer>.")
    assert (
        render(t, "paper", "{label}")
        == render(t, "tagged", "{label}")
        == "<think>Mary went there.</think> <answer>['garden']</answer>"
    )


_CFG = {
    "name": "t",
    "datasets": [{"name": "synthetic-babi", "size": 20}],
    "models": ["tiny-random"],
    "conditions": ["baseline", "teacher"],
    "teacher": {"model": "some-model", "base_url": "http://127.0.0.1:9/v1"},
}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"teacher": {"model": "m", "bogus": 1}}, "teacher.bogus: unknown key"),
        ({"teacher": {"model": "m", "api_key": "sk-x"}}, "teacher.api_key: unknown key"),  # the key is never an option
        ({"teacher": {"base_url": "http://127.0.0.1:9/v1"}}, "teacher.model: Field required"),
        ({"teacher": {"model": "m", "samples": 0}}, "teacher.samples: Input should be greater than or equal to 1"),
        ({"teacher": {"model": "m", "accept": "lenient"}}, "teacher.accept: Input should be 'correct' or 'upstream'"),
        ({"teacher": {"model": "m", "splits": ["dev"]}}, "teacher.splits[0]: Input should be 'train' or 'test'"),
        (
            {"teacher": {"model": "nosuch", "serve": True}},
            "teacher: serve needs a tracekd model (a preset or a folder): unknown model 'nosuch'",
        ),
        (
            {"teacher": {"model": "tiny-random", "backend": "local", "temperature": 0.7}},
            "teacher: the local backend decodes greedily",
        ),
        ({"teacher": "m"}, "teacher: Input should be a valid dictionary"),
        ({"teacher": None}, "condition(s) teacher need a `teacher:` block"),
        ({"conditions": ["teacher@x"]}, "conditions: unknown condition(s) teacher@x"),
    ],
)
def test_teacher_block_errors_name_the_key(tmp_path, change, needle):
    import yaml

    from tracekd.experiment.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**_CFG, **change}))
    with pytest.raises(InputError) as e:
        load_config(path)
    assert needle in str(e.value) and str(path) in str(e.value)
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "run", str(path), "--dry-run", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_teacher_block_dry_run_lists_the_cells(tmp_path):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**_CFG, "conditions": ["baseline", "baseline@teacher_correct", "teacher"]}))
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "run", str(path), "--dry-run", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "baseline@teacher_correct" in r.stdout and "teacher" in r.stdout and "3 cells" in r.stdout
    assert not (tmp_path / "run").exists()


def test_subset_table_puts_the_teachers_row_under_its_condition():
    """The teacher's own row has only `baseline`: its per-subset values used to fill the first
    columns whatever their condition."""
    from tracekd.report.build import _subsets

    def g(model, cond, acc):
        return {"dataset": "d", "model": model, "condition": cond, "by_subset": {"s": {"answer_accuracy": acc}}}

    results = {
        "conditions": ["baseline", "correct", "teacher"],
        "groups": [g("m", "correct", 0.5), g("m", "teacher", 0.25), g("teacher (big)", "baseline", 0.75)],
    }
    header, rows = _subsets(results)
    assert header == ["dataset", "model", "subset", "baseline", "correct", "teacher"]
    assert rows == [["d", "m", "s", "—", "50.0", "25.0"], ["d", "teacher (big)", "s", "75.0", "—", "—"]]
