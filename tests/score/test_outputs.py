"""Typed outputs: scores.examples.jsonl rows, scores.json and results.json are pydantic models
(score/outputs.py, report/outputs.py), validated when written and when read - a hand-edited or old
file is one clear error naming the file, the line and the field - and documented field by field in
docs/outputs.md, which is made from the models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.jsonio import read_jsonl
from tracekd.prepare import prepare
from tracekd.report.outputs import fields_markdown, read_results
from tracekd.report.results import group_results, write_results
from tracekd.score import evaluate as evaluate_module
from tracekd.score.evaluate import evaluate
from tracekd.score.outputs import read_rows, read_scores

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A prepared synthetic set scored with its own targets: scores.json, its rows, a results.json."""
    root = tmp_path_factory.mktemp("outputs")
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, root / "data")
    preds = root / "p.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"id": r["id"], "output": r["completion"][0]["content"]}) + "\n"
            for _, r in read_jsonl(root / "data" / "test.jsonl")
        )
    )
    evaluate(root / "data", preds, root / "scores.json")
    group = {
        **group_results("synthetic-babi", "m", "correct", {0: read_rows(root / "scores.examples.jsonl")}),
        "examples": ["scores.examples.jsonl"],
    }
    write_results(root / "results.json", "t", "experiment", {}, ["correct"], [group])
    return root


def test_the_documentation_is_made_from_the_models():
    assert (ROOT / "docs" / "outputs.md").read_text() == fields_markdown() + "\n", (
        'docs/outputs.md is out of date: python -c "from tracekd.report.outputs import fields_markdown; '
        "open('docs/outputs.md', 'w').write(fields_markdown() + '\\n')\""
    )


def test_what_tracekd_writes_reads_back(scored):
    assert read_scores(scored / "scores.json")["answer"]["accuracy"] == 1
    assert len(read_rows(scored / "scores.examples.jsonl")) == 5  # 5 tasks x round(0.2 x 4) test examples
    assert read_results(scored / "results.json")["groups"][0]["rates"]["answer_accuracy"]["mean"] == 1


def _edit(path: Path, change) -> Path:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize(
    "change,needle",
    [
        (
            lambda r: r["groups"][0]["rates"]["answer_accuracy"].update(mean="high"),
            "groups[0].rates.answer_accuracy.mean: Input should be a valid number",
        ),
        (lambda r: r.pop("kind"), "kind: Field required"),  # an older results.json
        (lambda r: r["groups"][0].update(condtion="x"), "groups[0].condtion: Extra inputs are not permitted"),
        (lambda r: r["groups"][0]["association"]["label"].update(table="2x2"), "groups[0].association.label.table"),
        (lambda r: r["groups"][0].update(examples=["../../etc/passwd"]), "not a path inside the folder"),
    ],
)
def test_a_hand_edited_results_json_is_one_clear_error(scored, tmp_path, change, needle):
    path = tmp_path / "results.json"
    path.write_text((scored / "results.json").read_text())
    _edit(path, change)
    with pytest.raises(InputError) as e:
        read_results(path)
    assert str(e.value).startswith(f"{path}: not the results.json this tracekd writes: ") and needle in str(e.value)
    r = subprocess.run([sys.executable, "-m", "tracekd", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no report written


def test_a_hand_edited_row_names_its_line(scored, tmp_path):
    lines = (scored / "scores.examples.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["status"] = "fine"
    lines[2] = json.dumps(row)
    path = tmp_path / "scores.examples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"scores.examples.jsonl:3: not a per-example row tracekd writes: status: "):
        read_rows(path)


def test_a_hand_edited_scores_json(scored, tmp_path):
    path = tmp_path / "scores.json"
    path.write_text((scored / "scores.json").read_text())
    _edit(path, lambda s: s["rates"]["parse_rate"].pop("per_seed"))
    with pytest.raises(
        InputError, match=r"scores.json: not the scores.json tracekd writes: rates.parse_rate.per_seed: Field required"
    ):
        read_scores(path)


def test_a_row_that_does_not_fit_is_never_written(scored, tmp_path, monkeypatch):
    real = evaluate_module.score_output
    monkeypatch.setattr(evaluate_module, "score_output", lambda *a: {**real(*a), "surprise": 1})
    preds = scored / "p.jsonl"
    with pytest.raises(
        InputError, match="a per-example row tracekd made does not fit its schema: surprise: Extra inputs"
    ):
        evaluate(scored / "data", preds, tmp_path / "scores.json")
    assert list(tmp_path.iterdir()) == []
