"""Benchmark: does bf16 keep the quality of fp32? The same LoRA training (same data, seed, steps)
in fp32 and in bf16, each adapter then generating the test set in its own precision, scored by
`tracekd evaluate`.

Prints JSON: the training loss at the end of each run (mean of the last five logged losses) and
their relative difference; answer accuracy of each with its 95 % Wilson interval; whether the
bf16 accuracy lies within the fp32 interval; the paired comparison on the same test items (both
right, only fp32 right, only bf16 right) with McNemar's exact test.

Assumptions: the test items are the unit (one seed, so seeds are not treated as samples); items are
independent; McNemar's test uses only the discordant items. A non-significant difference on a
small test set is not a proof of equivalence: read the interval widths.

Default: SmolLM2-135M, synthetic bAbI (tagged traces, correct condition; 320 train / 80 test),
30 optimiser steps of 4 examples at lr 1e-3, outputs up to 96 tokens. The machine is shared:
times are not compared here, only quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from scipy.stats import binomtest


def tracekd(*args) -> None:
    r = subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr[-3000:])


def wilson(k: int, n: int) -> list[float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(ci.low, 3), round(ci.high, 3)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    a = ap.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        tracekd("prepare", "--dataset", "synthetic-babi", "--size", a.size, "--template", "tagged", "--out", data)
        for precision in ("fp32", "bf16"):
            out = tmp / precision
            tracekd(
                "train",
                "--data",
                data,
                "--model",
                a.model,
                "--out",
                out / "train",
                "--max-steps",
                a.steps,
                "--batch-size",
                4,
                "--grad-accum",
                1,
                "--lr",
                "1e-3",
                "--warmup",
                0,
                "--save-steps",
                100000,
                "--logging-steps",
                1,
                "--precision",
                precision,
            )
            tracekd(
                "generate",
                "--data",
                data,
                "--model",
                a.model,
                "--adapter",
                out / "train" / "adapter",
                "--out",
                out / "preds.jsonl",
                "--max-new-tokens",
                a.max_new_tokens,
                "--precision",
                precision,
            )
            tracekd("evaluate", "--data", data, "--predictions", out / "preds.jsonl", "--out", out / "scores.json")
            summary = json.loads((out / "train" / "train_summary.json").read_text())
            losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
            rows = [json.loads(x) for x in (out / "scores.examples.jsonl").open()]
            runs[precision] = {
                "final_loss": sum(losses[-5:]) / len(losses[-5:]),
                "correct": {r["id"]: bool(r["answer"]["correct"]) for r in rows},
                "precision_used": summary["precision"],
                "runtime_s": summary["runtime_s"],
            }
    f, b = runs["fp32"], runs["bf16"]
    ids = sorted(f["correct"])
    n = len(ids)
    k_f, k_b = sum(f["correct"][i] for i in ids), sum(b["correct"][i] for i in ids)
    only_f = sum(f["correct"][i] and not b["correct"][i] for i in ids)
    only_b = sum(b["correct"][i] and not f["correct"][i] for i in ids)
    ci_f = wilson(k_f, n)
    print(
        json.dumps(
            {
                "benchmark": "bf16_vs_fp32_training_quality",
                "model": a.model,
                "data": f"synthetic-babi size {a.size}, tagged, correct",
                "steps": a.steps,
                "test_items": n,
                "final_loss": {"fp32": round(f["final_loss"], 4), "bf16": round(b["final_loss"], 4)},
                "loss_relative_difference": round((b["final_loss"] - f["final_loss"]) / f["final_loss"], 4),
                "answer_accuracy": {"fp32": round(k_f / n, 3), "bf16": round(k_b / n, 3)},
                "wilson_95": {"fp32": ci_f, "bf16": wilson(k_b, n)},
                "bf16_accuracy_within_fp32_interval": ci_f[0] <= k_b / n <= ci_f[1],
                "paired": {
                    "both_right": sum(f["correct"][i] and b["correct"][i] for i in ids),
                    "only_fp32_right": only_f,
                    "only_bf16_right": only_b,
                    "mcnemar_exact_p": round(binomtest(only_f, only_f + only_b).pvalue, 4) if only_f + only_b else 1.0,
                },
                "train_runtime_s": {"fp32": round(f["runtime_s"], 1), "bf16": round(b["runtime_s"], 1)},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
