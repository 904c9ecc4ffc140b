"""Benchmark: SFT throughput and MFU on the CPU — bf16 against fp32, and tracekd's recipe against
the paper's, on the same examples and steps.

Runs (each in its own process, same data, same number of optimiser steps):
- `fp32`:  tracekd's recipe (loss on the completion only, batches grouped by length), float32;
- `bf16`:  the same in bf16 (`--precision bf16`: autocast, LoRA weights and optimiser state fp32);
- `paper_recipe_bf16`: the paper's recipe (loss on the full sequence, random batches padded to
  the longest), bf16.
`bf16_speedup` = bf16 over fp32 tokens/s; `speedup` = tracekd's recipe over the paper's (both bf16).
Tokens/s counts real (non-padding) tokens.

MFU: each run measures, in its own process just before and after training, the peak rate of a
2048 x 2048 matrix multiply in the dtype its matrix products use (bf16 under autocast, else fp32),
and divides the useful FLOP/s of training by it. Useful FLOPs are counted from the batches actually
trained (a forward hook reads their attention masks and labels), padding excluded:
  per real token      4 * N_layers          frozen weights: forward 2N + input gradients 2N
                    + 6 * N_lora            adapters: forward, input and weight gradients
  per supervised token 4 * d * V            the LM head, run only where the loss is (tracekd's CPU loss)
  per sequence of s tokens, per layer  12 * d_attn * s(s+1)/2   causal attention (scores and values:
                                          forward 4 d_attn per query-key pair, backward twice that)
with N_layers the weights of the decoder's linear layers, N_lora the adapters' weights, d the hidden
size, d_attn = heads x head_dim, V the vocabulary. (The full fine-tuning convention 6N would count
weight gradients LoRA never computes.)

On a shared machine the wall clock counts the time other processes hold the cores, in the
training and in the peak alike, at different moments. So each run also reports its process CPU
time (user + system, from the Trainer's train-begin to train-end callbacks): `tokens_per_cpu_s`,
`bf16_speedup_cpu_time`, and `mfu_cpu_time` = useful FLOP per CPU second over the matmul peak per
CPU second (timed the same way). `--threads 1` avoids the other distortion of a loaded machine:
with two threads every parallel operation waits for the thread that is not scheduled.

Default: SmolLM2-135M, LoRA r16 all-linear without LoRA dropout (as tracekd's CPU configs; `--lora-dropout`),
CoTempQA from ../shared (10-36 facts per example; `--data synthetic-babi`: the demo's short examples),
400 examples, batch 1 (batches grouped by length start with the longest, about 1,300 tokens: fp32
needs about 6 GB per sequence of that length in a batch), 8 steps.
The machine is shared: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COTEMPQA = ROOT.parent / "shared" / "data" / "cotempqa"
RUNS = {"fp32": ("tracekd", "fp32"), "bf16": ("tracekd", "bf16"), "paper_recipe_bf16": ("paper", "bf16")}


def matmul_peak(dtype, n: int = 2048, reps: int = 8) -> tuple[float, float]:
    """(FLOP per wall second, FLOP per CPU second of this process) of the best of three timed
    blocks of n x n matrix products."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    wall = cpu = 0.0
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(reps):
            a @ b
        wall = max(wall, 2 * n**3 * reps / (time.perf_counter() - t))
        cpu = max(cpu, 2 * n**3 * reps / (time.process_time() - c))
    return wall, cpu


class FlopCounter:
    """Useful training FLOPs of the batches the model sees (see the module docstring)."""

    def __init__(self):
        self.flops = 0.0
        self.tokens = 0

    def attach(self, model) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        cfg = base.config
        self.d, self.vocab, self.layers = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
        self.d_attn = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
        self.n_layers = sum(
            p.numel() for n, p in base.named_parameters() if ".layers." in n and p.dim() == 2 and "lora_" not in n
        )
        self.n_lora = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
        base.base_model.register_forward_pre_hook(self._count, with_kwargs=True)  # the backbone: every token
        base.get_output_embeddings().register_forward_hook(self._count_head)  # the rows the LM head projects

    def _count(self, module, args, kwargs) -> None:
        if not module.training:
            return
        lengths = kwargs["attention_mask"].sum(1).double()  # tracekd's collator always passes the mask
        tokens = float(lengths.sum())
        attention = 3 * 2 * 2 * self.d_attn * float((lengths * (lengths + 1) / 2).sum()) * self.layers
        self.flops += tokens * (4 * self.n_layers + 6 * self.n_lora) + attention
        self.tokens += int(tokens)

    def _count_head(self, module, args, output) -> None:
        if module.training:  # on a CPU tracekd projects only the supervised positions
            self.flops += float(args[0].shape[:-1].numel()) * 4 * self.d * self.vocab


def worker(
    data: str, model: str, run: str, batch: int, steps: int, out: str, threads: int | None, lora_dropout: float
) -> None:
    import torch
    from transformers import TrainerCallback

    if threads:
        torch.set_num_threads(threads)

    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    recipe, precision = RUNS[run]
    tracekd = recipe == "tracekd"
    counter = FlopCounter()

    cpu_seconds = {}

    class Attach(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            counter.attach(model)
            cpu_seconds["begin"] = time.process_time()

        def on_train_end(self, args, state, control, **kw):
            cpu_seconds["end"] = time.process_time()

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak_before = matmul_peak(dtype)
    opts = TrainOptions(
        epochs=1,
        max_steps=steps,
        batch_size=batch,
        grad_accum=1,
        warmup=0,
        save_steps=10**6,
        max_length=4096,
        group_by_length=tracekd,
        completion_only_loss=tracekd,
        logging_steps=1,
        precision=precision,
        lora_dropout=lora_dropout,
    )
    s = train(data, model, Path(out).with_suffix(""), opts, callbacks=[Attach()])
    peak_after = matmul_peak(dtype)
    runtime = next(h["train_runtime"] for h in s["log_history"] if "train_runtime" in h)
    losses = [h["loss"] for h in s["log_history"] if "loss" in h]
    Path(out).write_text(
        json.dumps(
            {
                "tokens": counter.tokens,
                "seconds": float(runtime),
                "steps": s["steps"],
                "flops": counter.flops,
                "cpu_seconds": cpu_seconds["end"] - cpu_seconds["begin"],
                "matmul_peak_flops": max(peak_before[0], peak_after[0]),
                "matmul_peak_flops_per_cpu_s": max(peak_before[1], peak_after[1]),
                "precision": s["precision"],
                "final_loss": losses[-1] if losses else None,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "threads": torch.get_num_threads(),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    ap.add_argument(
        "--data",
        choices=["cotempqa", "synthetic-babi"],
        default="cotempqa" if COTEMPQA.is_dir() else "synthetic-babi",
        help="cotempqa (../shared; 10-36 facts, sequences up to about 1,300 tokens) or synthetic-babi "
        "(the demo's data: about 100-250 tokens)",
    )
    ap.add_argument(
        "--lora-dropout",
        type=float,
        default=0.0,
        help="LoRA dropout (default 0, as tracekd's CPU configs: on a CPU its random masks cost a quarter of a "
        "fp32 step and more of a bf16 one; the paper's 0.05 for comparison)",
    )
    ap.add_argument("--worker", nargs=3, metavar=("RUN", "DATA", "OUT"))
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[1], a.model, a.worker[0], a.batch_size, a.steps, a.worker[2], a.threads, a.lora_dropout)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = (
            ["--dataset", "cotempqa", "--source", str(COTEMPQA)]
            if a.data == "cotempqa"
            else ["--dataset", "synthetic-babi", "--size", str(a.examples * 5 // 4)]
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracekd",
                "prepare",
                *src,
                "--limit-train",
                str(a.examples),
                "--out",
                str(tmp / "data"),
            ],
            check=True,
            capture_output=True,
        )
        res = {}
        for run in a.runs:
            out = tmp / f"{run}.json"
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--model",
                    a.model,
                    "--batch-size",
                    str(a.batch_size),
                    "--steps",
                    str(a.steps),
                    *(["--threads", str(a.threads)] if a.threads else []),
                    "--lora-dropout",
                    str(a.lora_dropout),
                    "--worker",
                    run,
                    str(tmp / "data"),
                    str(out),
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                sys.exit(f"{run}: exit code {r.returncode} (-9: killed, e.g. out of memory)\n{r.stderr[-3000:]}")
            res[run] = json.loads(out.read_text())
    runs = {}
    for run, r in res.items():
        runs[run] = {
            "precision": r["precision"],
            "tokens": r["tokens"],
            "seconds": round(r["seconds"], 1),
            "tokens_per_s": round(r["tokens"] / r["seconds"], 1),
            "useful_gflop_per_s": round(r["flops"] / r["seconds"] / 1e9, 1),
            "matmul_peak_gflop_per_s": round(r["matmul_peak_flops"] / 1e9, 1),
            "mfu": round(r["flops"] / r["seconds"] / r["matmul_peak_flops"], 3),
            "cpu_seconds": round(r["cpu_seconds"], 1),
            "tokens_per_cpu_s": round(r["tokens"] / r["cpu_seconds"], 1),
            "mfu_cpu_time": round(r["flops"] / r["cpu_seconds"] / r["matmul_peak_flops_per_cpu_s"], 3),
            "final_loss": r["final_loss"],
            "peak_rss_mb": round(r["peak_rss_mb"]),
            "threads": r["threads"],
        }
    report = {
        "benchmark": "sft_tokens_per_second_and_mfu_cpu",
        "model": a.model,
        "data": a.data,
        "examples": a.examples,
        "batch_size": a.batch_size,
        "steps": a.steps,
        "lora_dropout": a.lora_dropout,
        "flop_count": "per real token 4*N_layers + 6*N_lora; per supervised token 4*d*V (LM head); "
        "per sequence 12*d_attn*s(s+1)/2 per layer (causal attention); padding excluded",
        "runs": runs,
    }
    if "fp32" in runs and "bf16" in runs:
        report["bf16_speedup"] = round(runs["bf16"]["tokens_per_s"] / runs["fp32"]["tokens_per_s"], 2)
        report["bf16_speedup_cpu_time"] = round(runs["bf16"]["tokens_per_cpu_s"] / runs["fp32"]["tokens_per_cpu_s"], 2)
        report["target_bf16_speedup"] = 1.8
    if "bf16" in runs:
        report["mfu"] = runs["bf16"]["mfu"]
        report["mfu_cpu_time"] = runs["bf16"]["mfu_cpu_time"]
        report["target_mfu"] = 0.4
    if "bf16" in runs and "paper_recipe_bf16" in runs:
        report["speedup"] = round(runs["bf16"]["tokens_per_s"] / runs["paper_recipe_bf16"]["tokens_per_s"], 2)
        report["target_speedup"] = 1.5
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
