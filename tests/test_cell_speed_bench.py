"""bench/cell_speed.py: one cell the naive way (TRL + `model.generate`) and tracekd's way, compared.

The comparison is checked on hand-made predictions (known scores, known differences); the whole
bench runs once in its `--quick` form (the tiny random model: no timing claim, only that both ways
run, are timed and are scored)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "cell_speed.py"


def _bench():
    spec = importlib.util.spec_from_file_location("cell_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_compare_scores_both_ways_and_reports_differences_beyond_the_tolerance(tmp_path):
    bench = _bench()
    bench.tracekd_cli(
        *("prepare", "--dataset", "synthetic-temporal", "--size", "60", "--limit-test", "10"),
        *("--condition", "correct", "--template", "tagged", "--out", tmp_path / "data"),
    )
    test = bench.read_jsonl(tmp_path / "data" / "test.jsonl")
    gold = [{"id": r["id"], "output": r["completion"][0]["content"]} for r in test]
    _write(tmp_path / "naive" / "predictions.jsonl", gold)  # every item right
    _write(tmp_path / "tracekd" / "predictions.jsonl", gold[:8] + [{"id": r["id"], "output": ""} for r in test[8:]])
    result = bench.compare(tmp_path, tolerance=10.0)
    assert result["scores_points"]["naive"]["answer_accuracy"] == 100.0
    assert result["scores_points"]["tracekd"]["answer_accuracy"] == 80.0
    assert result["delta_points"]["answer_accuracy"] == -20.0
    assert result["delta_points"]["step_label_accuracy"] == -20.0
    assert not result["agree"]  # 20 points > 10
    assert result["answer_paired"] == {
        "items": 10,
        "both_right": 8,
        "only_naive_right": 2,
        "only_tracekd_right": 0,
        "mcnemar_exact_p": 0.5,
    }
    assert result["identical_outputs"] == 0.8
    assert bench.compare(tmp_path, tolerance=25.0)["agree"] and result["informative"]
    for way in ("naive", "tracekd"):  # both ways learned nothing: they agree, and it says nothing
        _write(tmp_path / way / "predictions.jsonl", [{"id": r["id"], "output": ""} for r in test])
    empty = bench.compare(tmp_path, tolerance=10.0)
    assert empty["agree"] and not empty["informative"]


def test_the_seed_spread_widens_what_agreement_allows(tmp_path):
    """A second tracekd seed that differs from the first on 4 of 10 items: two trainings then differ
    by sqrt(4) / 10 = 20 points (one standard deviation), so 20 points between the ways is within
    2.64 of them; without the seed way the flat 10 points decide."""
    bench = _bench()
    bench.tracekd_cli(
        *("prepare", "--dataset", "synthetic-temporal", "--size", "60", "--limit-test", "10"),
        *("--condition", "correct", "--template", "tagged", "--out", tmp_path / "data"),
    )
    test = bench.read_jsonl(tmp_path / "data" / "test.jsonl")
    gold = [{"id": r["id"], "output": r["completion"][0]["content"]} for r in test]
    empty = [{"id": r["id"], "output": ""} for r in test]
    _write(tmp_path / "naive" / "predictions.jsonl", gold)
    _write(tmp_path / "tracekd" / "predictions.jsonl", gold[:8] + empty[8:])
    assert not bench.compare(tmp_path, tolerance=10.0)["agree"]
    _write(tmp_path / "tracekd_seed1" / "predictions.jsonl", empty[:2] + gold[2:])
    result = bench.compare(tmp_path, tolerance=10.0)
    spread = result["seed_spread"]["answer_accuracy"]
    assert spread == {"seed_delta_points": 0.0, "items_seeds_differ": 4, "items_ways_differ": 2, "sd_points": 20.0}
    assert result["allowed_points"]["answer_accuracy"] == 52.8  # 2.638 x 20
    assert result["agree"]
    # every rate gets its spread, from the same items' marks
    assert set(result["seed_spread"]) == set(result["delta_points"])
    assert result["spread_z"] == 2.638  # two-sided 5 % over the six rates
    rows = bench.read_jsonl(tmp_path / "tracekd" / "scores.examples.jsonl")
    for rate, mark in bench.item_marks().items():
        if rate in result["delta_points"]:
            applies = [bool(m) for r in rows if (m := mark(r)) is not None]
            assert round(100 * sum(applies) / len(applies), 1) == result["scores_points"]["tracekd"][rate]


def _quick_run(folder: Path) -> dict:
    r = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--keep", str(folder)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_quick_run_times_and_scores_both_ways(tmp_path):
    report = _quick_run(tmp_path)
    naive, tracekd = report["ways"]["naive"], report["ways"]["tracekd"]
    for way in (naive, tracekd):
        assert way["train_s"] > 0 and way["generate_s"] > 0
    # the ratio of the unrounded totals: the printed totals are rounded to 0.1 s
    lo = (naive["total_s"] - 0.05) / (tracekd["total_s"] + 0.05)
    hi = (naive["total_s"] + 0.05) / max(tracekd["total_s"] - 0.05, 1e-9)
    assert lo - 0.005 <= report["speedup"] <= hi + 0.005
    assert report["agreement"]["answer_paired"]["items"] == 4
    assert set(report["agreement"]["scores_points"]) == {"naive", "tracekd", "tracekd_seed1"}
    assert set(report["agreement"]["seed_spread"]) == set(report["agreement"]["delta_points"])
    # each way really trained an adapter and wrote one output per test item
    assert (tmp_path / "naive" / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "tracekd" / "train" / "adapter" / "adapter_config.json").is_file()
    for way in ("naive", "tracekd", "tracekd_seed1"):
        assert len((tmp_path / way / "predictions.jsonl").read_text().splitlines()) == 4
    assert report["ways_from_an_earlier_run"] == []

    # an interrupted run resumes in its kept folder: the finished way is read back, not run again
    naive_before = (tmp_path / "naive" / "times.json").read_text()
    (tmp_path / "tracekd" / "times.json").unlink()
    resumed = _quick_run(tmp_path)
    assert resumed["ways_from_an_earlier_run"] == ["naive", "tracekd_seed1"]
    assert (tmp_path / "naive" / "times.json").read_text() == naive_before
    assert resumed["ways"]["naive"] == naive
    assert (tmp_path / "tracekd" / "times.json").is_file()
