"""Benchmark: SFT throughput of tracekd's recipe vs the paper's, on the same examples.

tracekd: loss on the completion only, batches grouped by length (little padding).
paper:   loss on the full sequence, random batches padded to the longest, no length grouping.
Both recipes train the same number of steps on the same training set; throughput counts real
(non-padding) tokens per second of training. Length grouping only pays on a realistic training
set (transformers groups within mega-batches of up to 50 batches), so the default draws from 400
CoTempQA examples; `--epoch-of N` instead trains one full epoch of N examples, so both recipes
process exactly the same tokens. Each recipe runs in its own process (its peak memory is its own).
Default: SmolLM2-135M, LoRA, CoTempQA from ../shared (10-36 facts per example), batch 4, 8 steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COTEMPQA = ROOT.parent / "shared" / "data" / "cotempqa"


def worker(data: str, model: str, recipe: str, batch: int, steps: int, out: str) -> None:
    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    tracekd = recipe == "tracekd"
    opts = TrainOptions(epochs=1, max_steps=steps, batch_size=batch, grad_accum=1, warmup=0, save_steps=10**6, max_length=4096,
                        group_by_length=tracekd, completion_only_loss=tracekd, logging_steps=1)
    s = train(data, model, Path(out).with_suffix(""), opts)
    logs = [h for h in s["log_history"] if "num_tokens" in h]
    tokens = float(logs[-1]["num_tokens"])
    runtime = next(h["train_runtime"] for h in s["log_history"] if "train_runtime" in h)
    Path(out).write_text(json.dumps({"tokens": tokens, "seconds": float(runtime), "steps": s["steps"],
                                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--epoch-of", type=int, default=None, help="train one epoch of N examples instead")
    ap.add_argument("--worker", nargs=3, metavar=("RECIPE", "DATA", "OUT"))
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[1], a.model, a.worker[0], a.batch_size, a.steps, a.worker[2])
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = ["--dataset", "cotempqa", "--source", str(COTEMPQA)] if COTEMPQA.is_dir() else ["--dataset", "synthetic-temporal", "--size", "400"]
        if a.epoch_of:
            a.examples, a.steps = a.epoch_of, -1
        subprocess.run([sys.executable, "-m", "tracekd", "prepare", *src, "--limit-train", str(a.examples),
                        "--out", str(tmp / "data")], check=True, capture_output=True)
        res = {}
        for recipe in ("tracekd", "paper"):
            out = tmp / f"{recipe}.json"
            r = subprocess.run([sys.executable, __file__, "--model", a.model, "--batch-size", str(a.batch_size), "--steps", str(a.steps),
                                "--worker", recipe, str(tmp / "data"), str(out)], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(r.stderr[-3000:])
            res[recipe] = json.loads(out.read_text())
    t, p = res["tracekd"], res["paper"]
    tps_t, tps_p = t["tokens"] / t["seconds"], p["tokens"] / p["seconds"]
    print(json.dumps({
        "benchmark": "sft_tokens_per_second",
        "model": a.model, "data": "cotempqa" if COTEMPQA.is_dir() else "synthetic-temporal",
        "examples": a.examples, "batch_size": a.batch_size, "steps": t["steps"],
        "tokens_tracekd": t["tokens"], "tokens_paper_recipe": p["tokens"],
        "tracekd_tokens_per_s": round(tps_t, 1), "paper_recipe_tokens_per_s": round(tps_p, 1),
        "speedup": round(tps_t / tps_p, 2), "target_speedup": 1.5,
        "tracekd_peak_rss_mb": round(t["peak_rss_mb"]), "paper_recipe_peak_rss_mb": round(p["peak_rss_mb"]),
    }, indent=2))


if __name__ == "__main__":
    main()
