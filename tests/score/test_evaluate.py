"""`tracekd evaluate`: joining predictions with the prepared test set, scores and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TRACEKD = [sys.executable, "-m", "tracekd"]


def run(*args):
    return subprocess.run([*TRACEKD, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("prep") / "data"
    r = run(
        "prepare",
        "--dataset",
        "synthetic-babi",
        "--size",
        100,
        "--condition",
        "correct",
        "--template",
        "paper",
        "--out",
        d,
    )
    assert r.returncode == 0, r.stderr
    return d, [json.loads(x) for x in (d / "test.jsonl").open()]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gold_traces_score_perfectly(tmp_path, prepared):
    d, test = prepared
    preds = _write(
        tmp_path / "p.jsonl", [{"id": r["id"], "output": "assistant\n\n" + r["completion"][0]["content"]} for r in test]
    )
    r = run("evaluate", "--data", d, "--predictions", preds, "--out", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["n"] == len(test) == 20
    assert s["answer"]["accuracy"] == 1 and s["steps"]["label_accuracy"] == 1
    assert s["steps"]["evidence"]["exact"] == 1 and s["steps"]["trace_accuracy"] == 1
    assert s["association"]["trace"]["table"] == [[20, 0], [0, 0]]
    assert set(s["by_subset"]) == {"qa1", "qa2", "qa3", "qa6", "qa7"}
    rows = [json.loads(x) for x in (tmp_path / "s.examples.jsonl").open()]
    assert [x["id"] for x in rows] == [t["id"] for t in test] and all(x["trace_correct"] for x in rows)


def test_mixed_outputs_and_tallies(tmp_path, prepared):
    d, test = prepared
    rows = []
    for i, r in enumerate(test):
        gold = r["completion"][0]["content"]
        if i < 5:
            out = ""  # empty
        elif i < 8:
            out = "I do not know"  # free text: an answer, but wrong
        elif i < 12:
            out = gold.replace(r["label"], "counting" if r["label"] != "counting" else "single-supporting-fact")
        else:
            out = gold
        rows.append({"id": r["id"], "output": out})
    preds = _write(tmp_path / "p.jsonl", rows)
    r = run("evaluate", "--data", d, "--predictions", preds, "--out", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["status"] == {"ok": 15, "empty": 5, "unparsable": 0, "missing": 0}
    assert s["answer"]["accuracy"] == pytest.approx(12 / 20)
    assert s["steps"]["label_accuracy"] == pytest.approx(8 / 20)
    assert s["association"]["label"]["table"] == [[8, 0], [4, 8]]
    assert s["association"]["evidence"]["table"] == [[12, 0], [0, 8]]


@pytest.mark.parametrize(
    "lines,line,needle",
    [
        (['{"id": "nope", "output": "x"}'], 1, "not in the test set"),
        (["FIRST", "FIRST"], 2, "duplicate id"),
        (["FIRST", '{"id": 3}'], 2, "'id' and 'output'"),
        (["FIRST", "{oops"], 2, "not valid JSON"),
    ],
)
def test_bad_predictions(tmp_path, prepared, lines, line, needle):
    d, test = prepared
    first = json.dumps({"id": test[0]["id"], "output": "x"})
    p = tmp_path / "p.jsonl"
    p.write_text("".join((first if x == "FIRST" else x) + "\n" for x in lines))
    out = tmp_path / "s.json"
    r = run("evaluate", "--data", d, "--predictions", p, "--out", out)
    msg = " ".join(r.stderr.split())
    assert r.returncode == 2 and f"{p}:{line}" in msg and needle in msg
    assert not out.exists() and not (tmp_path / "s.examples.jsonl").exists()


def test_missing_predictions(tmp_path, prepared):
    d, test = prepared
    p = _write(tmp_path / "p.jsonl", [{"id": test[0]["id"], "output": test[0]["completion"][0]["content"]}])
    r = run("evaluate", "--data", d, "--predictions", p, "--out", tmp_path / "s.json")
    assert r.returncode == 2 and "19 test example(s) have no prediction" in r.stderr
    r = run("evaluate", "--data", d, "--predictions", p, "--out", tmp_path / "s.json", "--allow-missing")
    assert r.returncode == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["status"]["missing"] == 19 and s["answer"]["accuracy"] == pytest.approx(1 / 20)


def test_data_folder_without_test_set(tmp_path):
    r = run("evaluate", "--data", tmp_path, "--predictions", tmp_path / "p.jsonl", "--out", tmp_path / "s.json")
    assert r.returncode == 2 and "test.jsonl" in r.stderr and "not found" in r.stderr


def test_msmarco_correct_completions_score_perfectly(tmp_path, shared_data):
    """MS MARCO's gold answers are alternatives (21 of the 200 records have two): the target
    states one, and an answer matching any gold answer is right. Fed back as predictions, the
    `correct` condition's own completions used to score 0.897 (both answers in one target)."""
    src = shared_data / "msmarco" / "ms_marco_v1.1_train_sample200.json"
    raw = json.loads(src.read_text())
    assert sum(len(r["answers"]) == 2 for r in raw) == 21
    d = tmp_path / "m"
    r = run("prepare", "--dataset", "msmarco", "--source", src, "--condition", "correct", "--out", d)
    assert r.returncode == 0, r.stderr
    for split in ("train", "test"):
        recs = [json.loads(x) for x in (d / f"{split}.jsonl").open()]
        for rec in recs:
            assert rec["target"]["answers"] == rec["answers"][:1]
        if split == "train":
            continue
        assert "msmarco/64055" in {rec["id"] for rec in recs}
        preds = _write(tmp_path / "p.jsonl", [{"id": x["id"], "output": x["completion"][0]["content"]} for x in recs])
        r = run("evaluate", "--data", d, "--predictions", preds, "--out", tmp_path / "s.json")
        assert r.returncode == 0, r.stderr
        s = json.loads((tmp_path / "s.json").read_text())
        assert s["answer"]["accuracy"] == 1 and s["steps"]["trace_accuracy"] == 1
    # every record's completion, the two-answer ones (e.g. 64055) included, scores right
    from tracekd.data import get_dataset
    from tracekd.data.schema import Example
    from tracekd.score.answers import score_answer
    from tracekd.traces.parse import parse

    ds = get_dataset("msmarco")
    for split in ("train", "test"):
        for line in (d / f"{split}.jsonl").open():
            rec = json.loads(line)
            ex = Example.from_record(rec)
            assert score_answer(ds, parse(rec["completion"][0]["content"], ds.label_sentence).answers, ex, "")[
                "correct"
            ], ex.id
