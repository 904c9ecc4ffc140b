"""`tracekd run`: a small grid on the tiny model end to end, the report, resuming after SIGKILL,
and config errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recompute import (
    RATE_FIELDS,
    STEP_FIELDS,
    by,
    cell_rows,
    md_tables,
    pct,
    rate,
    seed_rates,
    table,
)
from tracekd.errors import InputError
from tracekd.experiment.config import load_config

ROOT = Path(__file__).resolve().parents[2]
GRID = """
name: grid
datasets:
  - {name: synthetic-babi, size: 50}
  - {name: synthetic-temporal, size: 40}
models: [tiny-random]
conditions: [baseline, answer_only, correct, incorrect]
seeds: [0, 1]
template: tagged
train: {max_steps: 3, batch_size: 4, grad_accum: 1, save_steps: 2, lr: 5.0e-3}
generate: {max_new_tokens: 24, batch_size: 8}
"""


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True, **kw)


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.imgs, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag not in ("img", "meta", "br", "input", "hr", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    (root / "grid.yaml").write_text(GRID)
    r = _run("run", root / "grid.yaml", "--out", root / "run")
    assert r.returncode == 0, r.stderr[-3000:]
    return root


def test_grid_results_and_report(grid_run):
    run = grid_run / "run"
    res = json.loads((run / "results.json").read_text())
    assert res["conditions"] == ["baseline", "answer_only", "correct", "incorrect"]
    cells = {(g["dataset"], g["model"], g["condition"]) for g in res["groups"]}
    assert cells == {
        (d, "tiny-random", c)
        for d in ("synthetic-babi", "synthetic-temporal")
        for c in ("baseline", "answer_only", "correct", "incorrect")
    }
    assert list(res)[:3] == ["name", "kind", "findings"]
    assert len(res["findings"]) == len(res["groups"]) * (5 + 3)  # 5 steps (tracekd) + 3 (paper) per group
    for g in res["groups"]:
        trained = g["condition"] != "baseline"
        assert g["seeds"] == ([0, 1] if trained else [0])
        for step in ("label", "evidence", "trace"):
            assert g["association"][step]["stratified"]["by"] == ("subset x seed" if trained else "subset")
            assert ("by_seed" in g["association"][step]) == trained
        assert g["regression"]["covariates"] == (["subset", "seed"] if trained else ["subset"])
        assert all(("training" in f["text"]) == trained for f in g["findings"])
    md = (run / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Findings") < md.index("<summary>Headline")
    page = (run / "report.html").read_text()
    p = _Html()
    p.feed(page)
    p.close()
    assert not p.stack and not p.external
    assert len(p.imgs) >= 3 and all(src.startswith("data:image/png;base64,") for src in p.imgs)
    assert "Examples" in page and 'class="ex"' in page
    # 14 cells: 2 datasets x (1 baseline + 3 conditions x 2 seeds), each done
    assert len(list((run / "cells").glob("*/*/*/*/cell.json"))) == 14


def _check_values(run: Path) -> int:
    """Every rate (pooled, per seed, sd), every step's 2x2 table (pooled, per subset, per seed) and
    the per-subset accuracies in results.json, and the same numbers in report.md, recomputed from
    each cell's scores.examples.jsonl by plain counting (tests/recompute.py). Returns how many
    rates differ between the seeds of a group."""
    res = json.loads((run / "results.json").read_text())
    rows_by_group = cell_rows(run)
    assert set(rows_by_group) == {(g["dataset"], g["model"], g["condition"]) for g in res["groups"]}
    md = md_tables((run / "report.md").read_text())
    headline = {(r["dataset"], r["model"]): r for r in md["Headline: answer accuracy (%)"]}
    steps = {(r["dataset"], r["model"], r["condition"]): r for r in md["Trace steps (%, tracekd definitions)"]}
    subsets = {(r["dataset"], r["model"], r["subset"]): r for r in md["Per subset: answer accuracy (%)"]}
    assoc = {
        (r["dataset"], r["model"], r["condition"], r["step"], r["defs"]): r
        for r in md["Does a right trace step go with a right answer?"]
    }
    varied = 0
    for g in res["groups"]:
        key = (g["dataset"], g["model"], g["condition"])
        seeds = rows_by_group[key]
        rows = [r for rs in seeds.values() for r in rs]
        first = next(iter(seeds.values()))
        assert list(seeds) == g["seeds"] and g["outputs"] == len(rows) and g["n"] == len(first)
        assert all([r["id"] for r in rs] == [r["id"] for r in first] for rs in seeds.values())  # the same items
        for name in RATE_FIELDS:
            pooled, per_seed, sd = seed_rates(seeds, name)
            r = g["rates"][name]
            assert r["mean"] == pytest.approx(pooled, abs=1e-12), (key, name)
            assert r["per_seed"] == pytest.approx(per_seed, abs=1e-12), (key, name)
            assert r["sd"] == (None if sd is None else pytest.approx(sd, abs=1e-12)), (key, name)
            varied += len(set(per_seed)) > 1
        by_subset = by(rows, "subset")
        for step in STEP_FIELDS:
            a = g["association"][step]
            assert a["table"] == table(rows, step), (key, step)
            for strata, groups in (("by_subset", by_subset), ("by_seed", {str(s): rs for s, rs in seeds.items()})):
                # the strata where the step applies to some example; one alone is not listed
                tables = {s: t for s, rs in groups.items() if sum(map(sum, t := table(rs, step)))}
                assert {s: b["table"] for s, b in a.get(strata, {}).items()} == (tables if len(tables) > 1 else {}), (
                    key,
                    step,
                )
            (ta, tb), (tc, td) = a["table"]
            assert assoc[(*key, step, "tracekd")]["a/b/c/d"] == f"{ta}/{tb}/{tc}/{td}"
        for subset, rs in by_subset.items():
            assert g["by_subset"][subset]["n"] == len(rs)
            assert g["by_subset"][subset]["answer_accuracy"] == pytest.approx(rate(rs, "answer_accuracy"), abs=1e-12)
            assert subsets[(g["dataset"], g["model"], subset)][g["condition"]] == pct(rate(rs, "answer_accuracy"))
        pooled, _, sd = seed_rates(seeds, "answer_accuracy")
        cell, parsed = headline[(g["dataset"], g["model"])][g["condition"]].split("; parsed ")
        assert cell.startswith(pct(pooled) + " [") and cell.endswith("]" if sd is None else f"] (sd {pct(sd)})"), cell
        assert parsed == pct(seed_rates(seeds, "parse_rate")[0])
        st = steps[key]
        assert (st["seeds"], st["n"]) == (str(len(seeds)), str(g["n"]))
        for col, name in (
            ("parse rate", "parse_rate"),
            ("label", "label_accuracy"),
            ("evidence", "evidence_accuracy"),
            ("anchor", "anchor_accuracy"),
            ("answer_fact", "answer_fact_accuracy"),
            ("trace", "trace_accuracy"),
            ("evidence F1", "evidence_f1"),
            ("answer", "answer_accuracy"),
        ):
            assert st[col].split(" [")[0] == pct(seed_rates(seeds, name)[0]), (key, col)
    return varied


def _remark(row: dict, i: int, cell: int, seed: int) -> dict:
    """The row with its scores replaced by a pattern of its index, its cell and its seed."""
    answer, label, exact = i % (2 + cell % 3) == 0, i % (2 + seed) == 0, (i + cell) % 3 == 0
    return {
        **row,
        "answer": {**row["answer"], "correct": answer},
        "label_correct": label,
        "evidence": {**row["evidence"], "exact": exact, "f1": 1.0 if exact else 0.25 * (i % 3)},
        "anchor_retrieved": None if row["anchor_retrieved"] is None else exact or i % 3 == 0,
        "answer_fact_retrieved": None if row["answer_fact_retrieved"] is None else i % 3 != seed,
        "trace_correct": label and exact,
        "parsed": {**row["parsed"], "answers": None if i % 5 == seed else ["x"]},
    }


def test_grid_values_are_those_of_the_cells_rows(grid_run, tmp_path):
    assert _check_values(grid_run / "run") >= 0
    # The tiny random model's answers and steps are all wrong, so the values above cannot tell
    # cells or seeds apart. On a copy, every cell's rows get a pattern of scores of their own;
    # `tracekd run` on it (every cell done) only aggregates them again.
    run = tmp_path / "run"
    shutil.copytree(grid_run / "run", run)
    for c, path in enumerate(sorted(run.glob("cells/*/*/*/seed-*/scores.examples.jsonl"))):
        seed = int(path.parent.name.removeprefix("seed-"))
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        path.write_text("".join(json.dumps(_remark(r, i, c, seed)) + "\n" for i, r in enumerate(rows)))
    r = _run("run", grid_run / "grid.yaml", "--out", run)
    assert r.returncode == 0 and "14 already done" in r.stdout, r.stderr[-2000:]
    assert _check_values(run) >= 30  # of the 12 two-seed groups x 8 rates, 36 differ between seeds


def test_rerun_skips_and_report_rebuilds(grid_run):
    run = grid_run / "run"
    before = (run / "results.json").read_bytes()
    r = _run("run", grid_run / "grid.yaml", "--out", run, "--dry-run")
    assert r.returncode == 0 and r.stdout.count("done") >= 14
    t = time.perf_counter()
    r = _run("run", grid_run / "grid.yaml", "--out", run)
    assert r.returncode == 0 and "14 already done" in r.stdout
    assert (run / "results.json").read_bytes() == before
    (run / "report.html").unlink()
    r = _run("report", run)
    assert r.returncode == 0 and (run / "report.html").is_file()
    assert time.perf_counter() - t < 120


def _cell_files(run: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The named files of every cell, by path in the run; the run's own folder, which scores.json
    names, replaced by RUN."""
    return {
        str(p.relative_to(run)): p.read_bytes().replace(str(run).encode(), b"RUN")
        for name in names
        for p in sorted((run / "cells").glob(f"*/*/*/*/{name}"))
    }


def test_sigkill_during_training_resumes_to_the_same_results(tmp_path):
    """A run killed (SIGKILL) after its first checkpoint and run again gives byte for byte the
    adapter weights, predictions and scores of a run never interrupted, and the same results.json,
    whose values are also recounted from the rows (not only compared with the same code's output);
    a mark added to the checkpoint shows the second run resumed from it rather than restarting.
    Not compared byte for byte: train_summary.json (it names the checkpoint resumed from and
    counts tokens since the process started; its logged losses are compared), adapter_config.json (peft writes target_modules
    in set order, which changes between processes) and training_args.bin (it names the folder)."""
    import yaml

    cfg = yaml.safe_load(GRID)
    cfg.update(seeds=[0], datasets=cfg["datasets"][:1], conditions=["baseline", "correct"])
    cfg["train"].update(max_steps=60, save_steps=5)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ref = _run("run", tmp_path / "c.yaml", "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracekd", "run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = (
        tmp_path / "run" / "cells" / "synthetic-babi" / "tiny-random" / "correct" / "seed-0" / "train" / "checkpoints"
    )
    deadline = time.time() + 240
    while time.time() < deadline and not any(ckpt.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name for p in (tmp_path / "run" / "cells").glob("*/*/*/*/cell.json")}
    assert any(ckpt.glob("checkpoint-*")) and not (ckpt.parent / "train_summary.json").exists()
    # Mark the newest checkpoint's logged history: a run that restarted from step 0 (ignoring the
    # checkpoint) would give the same bytes below, but not carry the mark into its summary.
    state_file = max(ckpt.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    state = json.loads(state_file.read_text())
    state["log_history"].append({"step": state["global_step"], "killed_here": True})
    state_file.write_text(json.dumps(state))
    r = _run("run", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((ckpt.parent / "train_summary.json").read_text())
    assert Path(summary["resumed_from"]) == state_file.parent and summary["steps"] == 60
    assert {"step": state["global_step"], "killed_here": True} in summary["log_history"]
    # the logged losses too (logging steps divide save steps, so no log straddles the kill)
    ref_summary = json.loads(
        (tmp_path / "ref" / ckpt.relative_to(tmp_path / "run").parent / "train_summary.json").read_text()
    )

    def losses(summary):
        return [(e["step"], e["loss"]) for e in summary["log_history"] if "loss" in e]

    assert losses(summary) == losses(ref_summary) and len(losses(ref_summary)) == 12
    assert 0 < state["global_step"] < 60
    assert done_before <= {p.parent.name for p in (tmp_path / "run" / "cells").glob("*/*/*/*/cell.json")}
    # the cells' outputs and scores, not only the aggregate: the same bytes as the uninterrupted run
    names = ("train/adapter/adapter_model.safetensors", "predictions.jsonl", "scores.examples.jsonl", "scores.json")
    resumed, uninterrupted = _cell_files(tmp_path / "run", names), _cell_files(tmp_path / "ref", names)
    assert len(uninterrupted) == 7 and set(resumed) == set(uninterrupted)
    for path, data in uninterrupted.items():
        assert resumed[path] == data, path
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == json.loads(
        (tmp_path / "ref" / "results.json").read_text()
    )
    _check_values(tmp_path / "run")  # and its numbers are those of its cells' rows, counted here


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"seeds": ["zero"]}, "seeds[0]"),
        ({"train": {"lr": -1}}, "train.lr"),
        ({"models": ["gpt-17"]}, "models[0].model: unknown model 'gpt-17'"),
        ({"datasets": [{"name": "cotempqa", "source": "./no/such/folder"}]}, "datasets[0].source: path not found"),
        ({"conditions": ["baseline", "magic"]}, "conditions: unknown condition(s) magic"),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, needle):
    import yaml

    cfg = {**yaml.safe_load(GRID), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = _run("run", path, "--out", tmp_path / "run")
    assert r.returncode == 2, r.stderr
    msg = " ".join(r.stderr.split())
    assert needle in msg and str(path) in r.stderr.replace("\n", "")
    assert not (tmp_path / "run").exists()


def test_shipped_configs_are_valid(shared_data):
    from tracekd.humanstudy.spec import load_spec

    names = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert {"demo.yaml", "paper-cotempqa.yaml", "paper-babi.yaml", "paper-msmarco.yaml"} <= set(names)
    for name in names:
        if name.startswith("humanstudy-"):  # a study spec (`tracekd humanstudy create`), not an experiment
            assert load_spec(ROOT / "configs" / name).types
            continue
        cfg = load_config(ROOT / "configs" / name)
        assert cfg.conditions[0] == "baseline"
    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert demo.models[0].model == "smollm2-135m" and demo.datasets[0].name == "synthetic-babi"
    assert load_config(ROOT / "configs" / "paper-cotempqa.yaml").seeds == [0, 1, 2]
    with pytest.raises(InputError, match="config file not found"):
        load_config(ROOT / "configs" / "nope.yaml")


def test_report_without_results_is_refused(tmp_path):
    r = _run("report", tmp_path)
    assert r.returncode == 2 and "no results.json" in r.stderr


def test_a_run_folder_from_before_a_new_config_key_is_resumed(tmp_path):
    """A config.json written before a key existed (here `interventions`, default []) is the same
    config when the key keeps its default; a changed value is still refused."""
    from tracekd.experiment.runner import _check_run_folder

    cfg = load_config(ROOT / "configs" / "demo.yaml").model_copy(update={"interventions": []})
    run = tmp_path / "run"
    run.mkdir()
    old = json.loads(cfg.model_dump_json())
    del old["interventions"]
    (run / "config.json").write_text(json.dumps(old))
    _check_run_folder(cfg, run)  # accepted
    with pytest.raises(InputError, match="made with a different config"):
        _check_run_folder(cfg.model_copy(update={"interventions": ["own"]}), run)


def test_a_run_folder_from_before_new_nested_keys_is_resumed(tmp_path):
    """A config.json from before `train.sft` and the models' `server` (a key inside each entry of a
    list) is the same config while those keep their defaults: a study run before them resumes."""
    from tracekd.experiment.runner import _check_run_folder

    cfg = load_config(ROOT / "configs" / "demo.yaml")
    run = tmp_path / "run"
    run.mkdir()
    old = json.loads(cfg.model_dump_json())
    del old["train"]["sft"]
    for m in old["models"]:
        del m["server"]
    (run / "config.json").write_text(json.dumps(old))
    _check_run_folder(cfg, run)  # accepted
    from tracekd.generate.options import ServerOptions

    served = cfg.models[0].model_copy(update={"server": ServerOptions(base_url="http://127.0.0.1:1/v1")})
    with pytest.raises(InputError, match="made with a different config"):
        _check_run_folder(cfg.model_copy(update={"models": [served]}), run)
