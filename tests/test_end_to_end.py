"""The whole pipeline on the tiny model: prepare -> train -> generate -> evaluate, and an
overfit check that training really teaches the completions."""

from __future__ import annotations

import json
import subprocess
import sys

from tracekd.generate.options import GenerateOptions
from tracekd.generate.run import generate


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def test_prepare_train_generate_evaluate(tmp_path):
    d = tmp_path / "data"
    _cli(
        "prepare",
        "--dataset",
        "synthetic-babi",
        "--size",
        40,
        "--condition",
        "correct",
        "--template",
        "tagged",
        "--out",
        d,
    )
    _cli(
        "train",
        "--data",
        d,
        "--model",
        "tiny-random",
        "--out",
        tmp_path / "run",
        "--max-steps",
        6,
        "--batch-size",
        4,
        "--grad-accum",
        1,
        "--lr",
        "5e-3",
    )
    _cli(
        "generate",
        "--data",
        d,
        "--model",
        "tiny-random",
        "--adapter",
        tmp_path / "run" / "adapter",
        "--out",
        tmp_path / "preds.jsonl",
        "--max-new-tokens",
        32,
    )
    r = _cli("evaluate", "--data", d, "--predictions", tmp_path / "preds.jsonl", "--out", tmp_path / "scores.json")
    s = json.loads((tmp_path / "scores.json").read_text())
    assert s["n"] == 10 and "association" in s and "answer accuracy" in r.stdout
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["examples"] == 30


def test_overfit_four_examples(overfit_run):
    """LoRA on a random tiny model learns to reproduce 4 training completions exactly (greedy)."""
    root, summary = overfit_run
    out = root / "overfit_preds.jsonl"
    data = root / "data"
    # generate on the training prompts: use the train file as the test set
    probe = root / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "test.jsonl").write_text((data / "train.jsonl").read_text())
    generate(
        probe,
        "tiny-random",
        out,
        adapter=root / "run" / "adapter",
        opts=GenerateOptions(max_new_tokens=96, batch_size=4),
    )
    got = {r["id"]: r["output"] for r in map(json.loads, out.open())}
    want = {r["id"]: r["completion"][0]["content"] for r in map(json.loads, (data / "train.jsonl").open())}
    assert len(want) == 4 and got == want
    assert summary["train_loss"] < 1.0
