"""`tracekd prepare`: files, manifest, determinism, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from independent import cotempqa_raw, read_cotempqa
from tracekd.jsonio import sha256_file

TRACEKD = [sys.executable, "-m", "tracekd"]


def run(*args, cwd=None):
    return subprocess.run([*TRACEKD, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_prepare_synthetic_writes_trl_files(tmp_path):
    out = tmp_path / "d"
    r = run(
        "prepare",
        "--dataset",
        "synthetic-babi",
        "--size",
        50,
        "--condition",
        "incorrect",
        "--template",
        "tagged",
        "--seed",
        3,
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    train = [json.loads(x) for x in (out / "train.jsonl").open()]
    test = [json.loads(x) for x in (out / "test.jsonl").open()]
    assert len(train) + len(test) == 50 and len(test) == 10  # round(0.2 * 10) per task
    rec = train[0]
    assert [m["role"] for m in rec["prompt"]] == ["system", "user"]
    assert [m["role"] for m in rec["completion"]] == ["assistant"]
    assert rec["question"] in rec["prompt"][1]["content"]
    assert rec["completion"][0]["content"].startswith("label: ") and rec["target"]["label"] != rec["label"]
    assert rec["perturbation"]["label"] == rec["target"]["label"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["train"]["total"] == len(train) and m["options"]["seed"] == 3
    assert sum(m["counts"]["test"]["label"].values()) == 10
    for name in ("train.jsonl", "test.jsonl"):
        assert m["files"][name]["sha256"] == sha256_file(out / name)


def test_prepare_is_byte_identical(tmp_path):
    args = ["prepare", "--dataset", "synthetic-temporal", "--size", 60, "--condition", "swapped", "--seed", 5]
    assert run(*args, "--out", tmp_path / "a").returncode == 0
    assert run(*args, "--out", tmp_path / "b").returncode == 0
    for name in ("train.jsonl", "test.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert run(*args[:-1], 6, "--out", tmp_path / "c").returncode == 0
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()


def test_prepare_real_cotempqa(tmp_path, shared_data):
    out = tmp_path / "c"
    r = run(
        "prepare", "--dataset", "cotempqa", "--source", shared_data / "cotempqa", "--condition", "correct", "--out", out
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    # expected from the raw files (tests/independent.py), not from tracekd's output
    raw = cotempqa_raw(shared_data)
    per_subset = Counter(i.split("/")[1] for i in raw)
    assert m["counts"]["test"]["subset"] == {s: round(0.2 * n) for s, n in per_subset.items()}
    readings = [read_cotempqa(rec, i.split("/")[1]) for i, rec in raw.items()]
    unanswered = sum(r.unanswered > 0 for r in readings)
    assert m["decomposition"]["examples"] == len(raw)
    assert m["decomposition"]["flags"].get("no_answer_fact", 0) == unanswered
    assert m["decomposition"]["flags"].get("ambiguous_anchor", 0) == sum(r.ambiguous for r in readings)
    assert m["decomposition"]["flags"].get("label_contradicts_dates", 0) == 76
    assert "label_contradicts_dates=76" in r.stdout
    assert ("no_answer_fact" in r.stdout) == (unanswered > 0)  # a flag no example has is not printed


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


GOOD = json.dumps(
    {
        "index": 0,
        "question": "While A was a member of B, which?",
        "facts": ["A is a member of the B in 1990."],
        "answer": ["B"],
    }
)


@pytest.mark.parametrize(
    "dataset,name,text,line,needle",
    [
        ("cotempqa", "equal.json", GOOD + "\n{not json\n", 2, "not valid JSON"),
        (
            "cotempqa",
            "equal.json",
            GOOD + "\n" + json.dumps({"index": 1, "question": "q", "facts": []}) + "\n",
            2,
            "'answer'",
        ),
        (
            "babi",
            "qa1_single-supporting-fact_train.txt",
            "1 Mary moved to the bathroom.\nJohn went home.\n",
            2,
            "number",
        ),
        (
            "msmarco",
            "marco.jsonl",
            json.dumps(
                {
                    "query_id": 1,
                    "query": "q",
                    "query_type": "entity",
                    "passages": {"is_selected": [1], "passage_text": ["p"]},
                }
            )
            + "\n",
            1,
            "'answers'",
        ),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, dataset, name, text, line, needle):
    src = _bad(tmp_path, name, text)
    out = tmp_path / "out"
    r = run("prepare", "--dataset", dataset, "--source", src, "--out", out)
    assert r.returncode == 2
    msg = " ".join(r.stderr.split())
    assert f"{src}:{line}" in msg.replace("\n", "") and needle in msg
    assert len(r.stderr.strip().splitlines()) <= 3  # one message, no traceback
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_missing_file_and_bad_options(tmp_path):
    out = tmp_path / "out"
    r = run("prepare", "--dataset", "cotempqa", "--source", tmp_path / "nope.json", "--out", out)
    assert r.returncode == 2 and "nope.json" in r.stderr and "not found" in r.stderr
    r = run("prepare", "--dataset", "synthetic-babi", "--size", 20, "--condition", "bogus", "--out", out)
    assert r.returncode == 2 and "bogus" in r.stderr
    r = run("prepare", "--dataset", "synthetic-babi", "--out", out)
    assert r.returncode == 2 and "--size" in r.stderr
    r = run("prepare", "--dataset", "cotempqa", "--source", "some-org/some-dataset", "--out", out)
    assert r.returncode == 2 and "some-org/some-dataset" in r.stderr
    assert not out.exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    """A failure while writing leaves no partial file behind (atomic writes)."""
    from tracekd import jsonio

    def boom(rec):
        raise RuntimeError("disk full")

    monkeypatch.setattr(jsonio, "dumps_line", boom)
    with pytest.raises(RuntimeError):
        jsonio.write_jsonl_atomic(tmp_path / "x.jsonl", [{"a": 1}])
    assert list(tmp_path.iterdir()) == []


def _without_own_distractor(path):
    """First questions of the stories (preset paper) whose story has no sentence fit as wrong
    evidence: every one is supporting, repeats a supporting one, or names the answer."""
    count, story, asked = 0, [], False
    for line in path.open():
        n, rest = line.rstrip("\n").split(" ", 1)
        if n == "1":
            story, asked = [], False
        if "\t" not in rest:
            story.append((n, rest.strip()))
            continue
        if asked:
            continue
        asked = True
        _, answer, ids = rest.split("\t")
        gold = {t.lower().rstrip(".") for i, t in story if i in ids.split()}
        answers = [a.strip().lower() for a in answer.split(",")]
        fit = [
            t
            for i, t in story
            if i not in ids.split()
            and t.lower().rstrip(".") not in gold
            and not any(f" {a} " in " " + t.lower().replace(".", " ") + " " for a in answers)
        ]
        count += not fit
    return count


def test_prepare_counts_borrowed_wrong_evidence(tmp_path, shared_data):
    """bAbI gave an empty wrong-evidence list where a story has no other sentence (qa17: every
    story; qa14: 75 train items). Now it is borrowed from another story, and counted."""
    out = tmp_path / "b"
    r = run(
        "prepare",
        "--dataset",
        "babi",
        "--source",
        shared_data / "babi" / "en",
        "--preset",
        "paper",
        "--subset",
        "qa17",
        "--subset",
        "qa14",
        "--condition",
        "incorrect",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    for split in ("train", "test"):
        in_files = sum(_without_own_distractor(p) for p in (shared_data / "babi" / "en").glob(f"qa1[47]_*_{split}.txt"))
        recs = [json.loads(x) for x in (out / f"{split}.jsonl").open()]
        expected = sum("evidence_from" in x["perturbation"] for x in recs)
        # the paper preset keeps every training story and 10 % of the test ones
        assert expected == in_files if split == "train" else 0 < expected <= in_files
        assert m["perturbations"][split] == {"evidence_from_other_example": expected, "evidence_empty": 0}
        assert all(x["target"]["evidence"] for x in recs)
        assert expected >= sum(x["subset"] == "qa17" for x in recs)  # every qa17 story borrows


def test_limit_test_per_subset(shared_data):
    """A seeded sample of each subset's test items: at most N of each, all of a smaller one, the same
    items on every call; limit_test then samples the result."""
    from tracekd.data.config import DatasetConfig
    from tracekd.prepare import load

    def drawn(**limits):
        sel = load(DatasetConfig(name="cotempqa", source=str(shared_data / "cotempqa"), **limits))
        return sel.examples["test"], sel.examples["train"]

    test, train = drawn(limit_test_per_subset=100)
    assert Counter(ex.subset for ex in test) == {"during": 100, "overlap": 100, "mix": 100, "equal": 87}
    assert [ex.id for ex in drawn(limit_test_per_subset=100)[0]] == [ex.id for ex in test]
    assert len(train) == 2147  # the train split is untouched
    both, _ = drawn(limit_test_per_subset=100, limit_test=50)
    assert len(both) == 50 and {ex.id for ex in both} <= {ex.id for ex in test}
