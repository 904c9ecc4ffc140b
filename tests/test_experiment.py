"""`tracekd run`: a small grid on the tiny model end to end, the report, resuming after SIGKILL,
and config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tracekd.errors import InputError
from tracekd.experiment.config import load_config

ROOT = Path(__file__).resolve().parents[1]
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
    assert cells == {(d, "tiny-random", c) for d in ("synthetic-babi", "synthetic-temporal")
                     for c in ("baseline", "answer_only", "correct", "incorrect")}
    assert list(res)[:3] == ["name", "kind", "findings"]
    assert len(res["findings"]) == len(res["groups"]) * (5 + 3)  # 5 steps (tracekd) + 3 (paper) per group
    for g in res["groups"]:
        trained = g["condition"] != "baseline"
        assert g["seeds"] == ([0, 1] if trained else [0])
        assert {"answer_accuracy", "label_accuracy", "evidence_accuracy", "trace_accuracy", "evidence_f1", "parse_rate"} <= set(g["rates"])
        r = g["rates"]["answer_accuracy"]
        assert {"mean", "sd", "ci95", "per_seed", "method"} <= set(r) and len(r["per_seed"]) == len(g["seeds"])
        assert r["method"] in ("bootstrap", "wilson")  # the same method for the baseline as for the rest
        for step in ("label", "evidence", "trace"):
            a = g["association"][step]
            assert sum(map(sum, a["table"])) == g["n"] * len(g["seeds"]) == g["outputs"]
            assert a["stratified"]["by"] == ("subset x seed" if trained else "subset")
            assert ("by_seed" in a) == trained
        assert g["regression"]["covariates"] == (["subset", "seed"] if trained else ["subset"])
        # per-example rows are the source: the group's tables are the sums over its cells' rows
        rows = [json.loads(x) for e in g["examples"] for x in (run / e).open()]
        assert len(rows) == g["outputs"] and g["association"]["label"]["table"][0][0] == sum(
            r["label_correct"] and r["answer"]["correct"] for r in rows)
        assert all(("training" in f["text"]) == trained for f in g["findings"])
    md = (run / "report.md").read_text()
    assert md.index("## Findings") < md.index("## Headline")
    for needle in ("CMH χ²", "χ² pool", "both✓", "adjusted OR", "Per subset (tracekd definitions)", "Per seed (tracekd definitions)"):
        assert needle in md
    for c in ("baseline", "answer_only", "correct", "incorrect"):
        assert c in md
    page = (run / "report.html").read_text()
    p = _Html()
    p.feed(page)
    p.close()
    assert not p.stack and not p.external
    assert len(p.imgs) >= 3 and all(src.startswith("data:image/png;base64,") for src in p.imgs)
    assert "Examples" in page and 'class="ex"' in page
    # 14 cells: 2 datasets x (1 baseline + 3 conditions x 2 seeds), each done
    assert len(list((run / "cells").glob("*/*/*/*/cell.json"))) == 14


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


def test_sigkill_during_training_resumes_to_the_same_results(tmp_path):
    import yaml

    cfg = yaml.safe_load(GRID)
    cfg.update(seeds=[0], datasets=cfg["datasets"][:1], conditions=["baseline", "correct"])
    cfg["train"].update(max_steps=60, save_steps=5)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ref = _run("run", tmp_path / "c.yaml", "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen([sys.executable, "-m", "tracekd", "run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "run" / "cells" / "synthetic-babi" / "tiny-random" / "correct" / "seed-0" / "train" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not any(ckpt.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name for p in (tmp_path / "run" / "cells").glob("*/*/*/*/cell.json")}
    assert any(ckpt.glob("checkpoint-*")) and not (ckpt.parent / "train_summary.json").exists()
    r = _run("run", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((ckpt.parent / "train_summary.json").read_text())
    assert summary["resumed_from"] is not None
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == json.loads((tmp_path / "ref" / "results.json").read_text())
    assert done_before <= {p.parent.name for p in (tmp_path / "run" / "cells").glob("*/*/*/*/cell.json")}


@pytest.mark.parametrize("change,needle", [
    ({"bogus": 1}, "bogus: unknown key"),
    ({"seeds": ["zero"]}, "seeds[0]"),
    ({"train": {"lr": -1}}, "train.lr"),
    ({"models": ["gpt-17"]}, "models[0].model: unknown model 'gpt-17'"),
    ({"datasets": [{"name": "cotempqa", "source": "./no/such/folder"}]}, "datasets[0].source: path not found"),
    ({"conditions": ["baseline", "magic"]}, "conditions: unknown condition(s) magic"),
])
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
    names = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert {"demo.yaml", "paper-cotempqa.yaml", "paper-babi.yaml", "paper-msmarco.yaml"} <= set(names)
    for name in names:
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
