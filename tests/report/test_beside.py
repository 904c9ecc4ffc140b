"""`tracekd report RUN --beside OTHER`: a run and a rescore set side by side on the test items both
have, every number worked out by hand here.

The run: model `student`, condition `correct`, seeds 0 and 1, items a1-a6 (subset A), b1 and b2
(B), c1 (A). The rescore: model `paper-model`, condition `correct`, one output per item, items
a1-a6, b1 and d1. Matched: a1-a6 and b1 (7 items; b2, c1 and d1 are dropped, and each would change
the numbers below if it were kept). Per output the label step and the answer (L, Y) are:
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from recompute import md_tables, pct
from tracekd.report.results import group_results, write_results
from values_run import output_row

# item -> (label right, answer right)
RUN = {
    0: {"a1": (1, 1), "a2": (1, 1), "a3": (1, 1), "a4": (0, 1), "a5": (0, 0), "a6": (1, 0), "b1": (1, 1)},
    1: {"a1": (1, 1), "a2": (1, 0), "a3": (0, 1), "a4": (0, 1), "a5": (0, 0), "a6": (1, 1), "b1": (0, 0)},
}
for seed in RUN:
    RUN[seed].update({"b2": (0, 1), "c1": (1, 0)})  # not in the rescore
RESCORE = {"a1": (1, 1), "a2": (1, 1), "a3": (1, 0), "a4": (0, 1), "a5": (0, 0), "a6": (0, 0), "b1": (0, 1)}
RESCORE["d1"] = (1, 1)  # not in the run
SUBSET = {"b1": "B", "b2": "B"}


def _rows(table: dict[str, tuple[int, int]], seed: int) -> list[dict]:
    out = []
    for item, (label, answer) in table.items():
        row = output_row("a1", seed, (label, label, float(label), label, label, answer), "correct")
        out.append({**row, "id": f"values/{item}", "subset": SUBSET.get(item, "A")})
    return out


def _write(folder: Path, kind: str, model: str, by_seed: dict, config: dict) -> None:
    key = ("synthetic-babi", model, "correct")
    group = {**group_results(*key, by_seed), "examples": ["x.jsonl"]}
    write_results(folder / "results.json", kind, kind, config, ["correct"], [group], {key: by_seed})


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("beside")
    run, other = root / "run", root / "rescore"
    run.mkdir(), other.mkdir()
    _write(run, "experiment", "student", {s: _rows(RUN[s], s) for s in RUN}, {"datasets": [{"name": "synthetic-babi"}]})
    _write(other, "rescore", "paper-model", {0: _rows(RESCORE, 0)}, {"dataset": "synthetic-babi", "ir_rule": "paper"})
    return run, other


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True)


def conditional_mle() -> float:
    """The rescore's one informative stratum (A: a1-a6, one output per item) has a = 2 with every
    margin 3, so its expected cell is 1.5 and the exact conditional test applies. The conditional
    maximum-likelihood odds ratio solves E[a | psi] = 2 under the noncentral hypergeometric law,
    P(a = k) ∝ C(3, k) C(3, 3 - k) psi^k = (1, 9, 9, 1) psi^k:
    (9 psi + 18 psi² + 3 psi³) / (1 + 9 psi + 9 psi² + psi³) = 2, i.e. psi³ - 9 psi - 2 = 0."""
    (root,) = [r.real for r in np.roots([1, 0, -9, -2]) if abs(r.imag) < 1e-12 and r.real > 1]
    return float(root)


def test_side_by_side_on_the_matched_items(pair):
    run, other = pair
    r = _cli("report", run, "--beside", other)
    assert r.returncode == 0, r.stderr
    b = json.loads((run / "results.json").read_text())["beside"]
    assert (b["items"], b["items_here"], b["items_beside"]) == (7, 9, 8)
    cells = {c["side"]: c for c in b["cells"]}
    here, there = cells["here"], cells["beside"]
    assert (here["model"], here["n"], here["outputs"], there["model"], there["n"]) == (
        "student",
        7,
        14,
        "paper-model",
        7,
    )
    # run, matched: answer right in 5 of 7 (seed 0) + 4 of 7 (seed 1); label right in 5 + 3
    assert here["rates"]["answer_accuracy"]["mean"] == pytest.approx(9 / 14)
    assert here["rates"]["label_accuracy"]["mean"] == pytest.approx(8 / 14)
    # seed 0: a 4 (a1 a2 a3 b1), b 1 (a6), c 1 (a4), d 1 (a5); seed 1: a 2 (a1 a6), b 1 (a2), c 2 (a3 a4), d 2 (a5 b1)
    label = here["association"]["label"]
    assert label["table"] == [[6, 2], [3, 3]] and label["test"] == "CMH"
    # strata subset x seed; B | seed 0 and B | seed 1 hold one output each: left out.
    # Mantel-Haenszel: A | seed 0 (a 3, b 1, c 1, d 1), A | seed 1 (a 2, b 1, c 2, d 1), 6 outputs each:
    # (3·1/6 + 2·1/6) / (1·1/6 + 1·2/6) = 5/3
    assert label["odds_ratio"] == pytest.approx(5 / 3)
    # the rescore: answer right in 4 of 7, label in 3 of 7; table a 2 (a1 a2), b 1 (a3), c 2 (a4 b1), d 2 (a5 a6)
    assert there["rates"]["answer_accuracy"]["mean"] == pytest.approx(4 / 7)
    assert there["rates"]["label_accuracy"]["mean"] == pytest.approx(3 / 7)
    label = there["association"]["label"]
    assert label["table"] == [[2, 1], [2, 2]] and label["test"] == "exact conditional test"
    assert label["odds_ratio"] == pytest.approx(conditional_mle(), rel=1e-4)
    assert label["verdict"] == "too few"  # 3 outputs in each margin of the informative stratum
    # the report shows both, with the matched count
    md = (run / "report.md").read_text()
    tables = md_tables(md)
    title = "Side by side with rescore: the same 7 test items"
    acc = {row["source"]: row for row in tables[f"{title}: accuracy (%)"]}
    assert acc["this run"]["answer"].startswith(pct(F(9, 14)) + " [") and acc["this run"]["seeds"] == "2"
    assert acc["rescore"]["label"].startswith(pct(F(3, 7)) + " [") and acc["rescore"]["items"] == "7"
    steps = {(row["source"], row["step"]): row for row in tables[f"{title}: each step with the answer"]}
    assert steps[("this run", "label")]["a/b/c/d"] == "6/2/3/3" and steps[("this run", "label")][
        "OR [95 % CI]"
    ].startswith("1.67 [")
    assert steps[("rescore", "label")]["verdict"] == "too few informative outputs for a verdict"
    assert "7 items matched: of 9 here and 8 in rescore" in md
    # a plain rebuild keeps the table (it is in results.json)
    assert _cli("report", run).returncode == 0
    assert (run / "report.md").read_text() == md


def test_different_evidence_rules_are_refused(pair, tmp_path):
    run, other = pair
    mine = tmp_path / "run"
    mine.mkdir()
    res = json.loads((run / "results.json").read_text())
    res["config"] = {"datasets": [{"name": "synthetic-babi", "ir_rule": "tracekd"}]}
    res.pop("beside", None)
    (mine / "results.json").write_text(json.dumps(res))
    (mine / "rows.jsonl.gz").write_bytes((run / "rows.jsonl.gz").read_bytes())
    r = _cli("report", mine, "--beside", other)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "tracekd rule here and the paper rule beside" in r.stderr and "--ir-rule tracekd" in r.stderr
    assert not (mine / "report.md").exists() and "beside" not in json.loads((mine / "results.json").read_text())


def test_a_folder_without_results_is_refused(pair, tmp_path):
    run, _ = pair
    r = _cli("report", run, "--beside", tmp_path)
    assert r.returncode == 2 and "no results.json in the folder given to --beside" in r.stderr


def test_beside_the_papers_published_outputs(tmp_path, shared_data, reference_outputs):
    """The paper's Llama-3.2-1B outputs on CoTempQA `equal` (rescored, primary evidence rule `paper`)
    beside a run on tracekd's own `equal` test split (gold traces as outputs, `ir_rule: paper`): all 87
    items match on the example id, and the rescore's rows recomputed on them give its own numbers."""
    import shutil

    from tracekd.data.config import DatasetConfig
    from tracekd.jsonio import read_jsonl
    from tracekd.prepare import prepare
    from tracekd.score.evaluate import evaluate
    from tracekd.score.outputs import read_rows

    files = sorted((reference_outputs / "evaluation_outputs" / "equal").glob("*.json"))
    r = _cli("rescore", "--source", shared_data / "cotempqa", *files, "--report", tmp_path / "paper")
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = DatasetConfig(name="cotempqa", source=str(shared_data / "cotempqa"), subsets=["equal"], ir_rule="paper")
    prepare(cfg, "correct", "tagged", 0, tmp_path / "data")
    preds = tmp_path / "p.jsonl"
    test = [rec for _, rec in read_jsonl(tmp_path / "data" / "test.jsonl")]
    preds.write_text("".join(json.dumps({"id": x["id"], "output": x["completion"][0]["content"]}) + "\n" for x in test))
    run = tmp_path / "run"
    evaluate(tmp_path / "data", preds, run / "scores.json")
    rows = {("cotempqa", "student", "correct"): {0: read_rows(run / "scores.examples.jsonl")}}
    group = group_results("cotempqa", "student", "correct", rows[("cotempqa", "student", "correct")])
    config = {"datasets": [json.loads(cfg.model_dump_json())]}
    write_results(run / "results.json", "run", "experiment", config, ["correct"], [{**group, "examples": ["x"]}], rows)
    r = _cli("report", run, "--beside", tmp_path / "paper")
    assert r.returncode == 0, r.stderr[-2000:]
    b = json.loads((run / "results.json").read_text())["beside"]
    assert (b["items"], b["items_here"], b["items_beside"]) == (87, 87, 87) and len(test) == 87
    paper = {g["condition"]: g for g in json.loads((tmp_path / "paper" / "results.json").read_text())["groups"]}
    for cell in (c for c in b["cells"] if c["side"] == "beside"):
        own = paper[cell["condition"]]
        assert cell["model"] == "Llama-3.2-1B-Instruct" and cell["n"] == own["n"] == 87
        assert {k: v["mean"] for k, v in cell["rates"].items()} == {k: v["mean"] for k, v in own["rates"].items()}
        assert {s: a["table"] for s, a in cell["association"].items()} == {
            s: a["table"] for s, a in own["association"].items()
        }
    # the same run judged under tracekd's own evidence rule is refused beside the paper-rule rescore
    other = tmp_path / "other"
    shutil.copytree(run, other)
    res = json.loads((other / "results.json").read_text())
    res["config"]["datasets"][0]["ir_rule"] = "tracekd"
    (other / "results.json").write_text(json.dumps(res))
    r = _cli("report", other, "--beside", tmp_path / "paper")
    assert r.returncode == 2 and "--ir-rule tracekd" in r.stderr
