"""`tracekd report` and `tracekd evaluate` on hostile folders: a hand-edited results.json is one
message naming the field; a `plots` link out of the folder is refused; the temporary files a killed
report or evaluate left are removed; an error names the target, not our temporary file."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.jsonio import naming, read_jsonl
from tracekd.prepare import prepare
from tracekd.report.results import group_results, write_results
from tracekd.score.evaluate import evaluate
from tracekd.score.outputs import read_rows


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, root / "data")
    preds = root / "p.jsonl"
    rows = [
        {"id": r["id"], "output": r["completion"][0]["content"]} for _, r in read_jsonl(root / "data" / "test.jsonl")
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluate(root / "data", preds, root / "run" / "scores.json")
    group = {
        **group_results("synthetic-babi", "m", "correct", {0: read_rows(root / "run" / "scores.examples.jsonl")}),
        "examples": ["scores.examples.jsonl"],
    }
    write_results(root / "run" / "results.json", "t", "experiment", {"examples_in_report": 5}, ["correct"], [group])
    return root


def _copy_run(scored: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("results.json", "scores.examples.jsonl"):
        (to / name).write_bytes((scored / "run" / name).read_bytes())
    return to


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda r: r["config"].update(examples_in_report="abc"), "config.examples_in_report must be a whole number"),
        (lambda r: r["groups"][0].update(examples=[]), "groups[0].examples: List should have at least 1 item"),
        (lambda r: r["groups"][0].update(seeds=[]), "groups[0].seeds: List should have at least 1 item"),
    ],
)
def test_a_hand_edited_results_json_names_the_field(scored, tmp_path, change, needle):
    run = _copy_run(scored, tmp_path / "run")
    obj = json.loads((run / "results.json").read_text())
    change(obj)
    (run / "results.json").write_text(json.dumps(obj))
    r = _cli("report", run)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert needle in r.stderr
    assert not (run / "report.html").exists()


def test_a_plots_link_out_of_the_folder_is_refused(scored, tmp_path):
    run = _copy_run(scored, tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "plots").symlink_to(outside)
    r = _cli("report", run)
    assert r.returncode == 2 and f"{run / 'plots'}: is a link" in r.stderr
    assert list(outside.iterdir()) == []


def test_the_temporaries_of_a_killed_report_or_evaluate_are_removed(scored, tmp_path):
    run = _copy_run(scored, tmp_path / "run")
    (run / "plots").mkdir()
    left = [run / ".report.html.abcd1234.tmp", run / "plots" / ".accuracy.png.abcd1234.tmp"]
    for p in left:
        p.write_text("torn")
    assert _cli("report", run).returncode == 0
    assert not any(p.exists() for p in left)
    out = tmp_path / "eval"
    out.mkdir()
    left = [out / ".scores.json.abcd1234.tmp", out / ".scores.examples.jsonl.abcd1234.tmp"]
    for p in left:
        p.write_text("torn")
    evaluate(scored / "data", scored / "p.jsonl", out / "scores.json")
    assert not any(p.exists() for p in left) and (out / "scores.json").is_file()


def test_an_error_names_the_target_not_the_temporary_file(tmp_path):
    target = tmp_path / "scores.json"
    with pytest.raises(OSError) as e, naming(target):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / ".scores.json.k3j_a9x2.tmp"))
    assert e.value.filename == str(target)
