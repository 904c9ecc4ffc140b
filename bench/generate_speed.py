"""Benchmark: greedy generation stopping at EOS — continuous batching (tracekd) against one prompt
at a time (the paper's loop: transformers' `generate` per prompt), and a static batch for context.

The outputs have the lengths a trained model writes: the bench trains a quick LoRA adapter on
synthetic bAbI traces (`--train-steps`, SmolLM2-135M, the tagged template; about a minute in bf16)
unless `--adapter` names one (e.g. the demo's correct-trace adapter). All ways decode the same test
prompts in the same process and dtype (`--precision`, default auto: bf16 weights on CPUs with
AMX / AVX512-BF16).

Prints JSON: new tokens/s of each way, `eos_speedup` (continuous batching over one at a time),
`static_batch_speedup` (transformers' `generate` on left-padded batches: each batch decodes until
its longest output ends), `identical` (true when every output of continuous batching is that of
one at a time, token for token), and the output lengths. Then each prompt under three forced traces
(as `tracekd intervene` sends them): `prefix_reuse_speedup` (the decoder taking the keys and values
of the tokens a prompt shares with the one before from that one's cache, over prefilling every
token) and `prefix_reuse_identical`. The machine is shared: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_at_a_time(gen, prompts, max_new_tokens):
    """transformers' `generate`, one prompt at a time."""
    import torch

    from tracekd.models.prompts import prompt_ids

    out = {}
    for pid, msgs in prompts:
        ids = torch.tensor([prompt_ids(gen.tok, msgs, gen.spec)])
        seq = gen.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=gen.eos_ids,
            pad_token_id=gen.tok.pad_token_id,
        )
        out[pid] = seq[0, ids.shape[1] :].tolist()
    return out


def static_batches(gen, prompts, max_new_tokens, batch_size):
    """transformers' `generate` on left-padded batches of similar prompt lengths (tracekd's former way)."""
    import torch

    from tracekd.models.prompts import prompt_ids

    encoded = sorted(((pid, prompt_ids(gen.tok, msgs, gen.spec)) for pid, msgs in prompts), key=lambda x: -len(x[1]))
    out = {}
    for i in range(0, len(encoded), batch_size):
        batch = encoded[i : i + batch_size]
        width = max(len(ids) for _, ids in batch)
        input_ids = torch.full((len(batch), width), gen.tok.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, ids) in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = 1
        seq = gen.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=gen.eos_ids,
            pad_token_id=gen.tok.pad_token_id,
        )
        for row, (pid, _) in enumerate(batch):
            out[pid] = seq[row, width:].tolist()
    return out


def strip(ids, gen):
    """Generated ids up to (not including) the first stop token; padding after it dropped."""
    for i, t in enumerate(ids):
        if t in gen.eos_ids:
            return ids[:i]
    return ids


def continuous(gen, prompts, max_new_tokens, batch_size):
    from tracekd.generate.hf import ContinuousDecoder
    from tracekd.models.prompts import prompt_ids

    encoded = [prompt_ids(gen.tok, msgs, gen.spec) for _, msgs in prompts]
    out = {}
    for done in ContinuousDecoder(gen.model, gen.eos_ids, batch_size).run(encoded, max_new_tokens):
        for i, ids in done:
            out[prompts[i][0]] = ids
    return out


def forced_variants(gen, recs):
    """Each test prompt under three forced traces, as `tracekd intervene` sends them one item after
    another: the gold trace up to `answer:`, the same with another label, and no trace."""
    from tracekd.models.prompts import prompt_ids

    out = []
    for r in recs:
        gold = r["completion"][0]["content"]
        head = gold[: gold.rindex("answer:") + len("answer:")]
        label_line = head.split("\n", 1)[0]
        for forced in (head, head.replace(label_line, "label: something else", 1), "answer:"):
            out.append(prompt_ids(gen.tok, r["prompt"], gen.spec) + gen.forced_ids(forced))
    return out


def forced_runs(gen, prompts, max_new_tokens, batch_size, reuse):
    from tracekd.generate.hf import ContinuousDecoder

    decoder = ContinuousDecoder(gen.model, gen.eos_ids, batch_size, reuse=reuse)
    out = {i: ids for done in decoder.run(prompts, max_new_tokens) for i, ids in done}
    return out, decoder.reused


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def quick_adapter(data: Path, out: Path, model: str, steps: int, precision: str, threads: int | None) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "train",
            "--data",
            str(data),
            "--model",
            model,
            "--out",
            str(out),
            "--max-steps",
            str(steps),
            "--batch-size",
            "4",
            "--grad-accum",
            "1",
            "--lr",
            "1e-3",
            "--warmup",
            "0",
            "--save-steps",
            "100000",
            "--precision",
            precision,
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return out / "adapter"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", type=Path, help="a LoRA adapter of --model (default: train a quick one)")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--n", type=int, default=48, help="test prompts")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from tracekd.generate.hf import HFGenerator
    from tracekd.models import resolve
    from tracekd.traces.records import read_sft_records

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracekd",
                "prepare",
                "--dataset",
                "synthetic-babi",
                "--size",
                str(max(400, 3 * a.n)),
                "--template",
                "tagged",
                "--out",
                str(tmp / "data"),
            ],
            check=True,
            capture_output=True,
        )
        adapter, train_s = a.adapter, None
        if adapter is None:
            adapter, train_s = timed(
                lambda: quick_adapter(tmp / "data", tmp / "train", a.model, a.train_steps, a.precision, a.threads)
            )
        recs = read_sft_records(tmp / "data", "test")[: a.n]
        prompts = [(r["id"], r["prompt"]) for r in recs]
        gen = HFGenerator(resolve(a.model), adapter, precision=a.precision)
        single, t_single = timed(lambda: one_at_a_time(gen, prompts, a.max_new_tokens))
        batched, t_cont = timed(lambda: continuous(gen, prompts, a.max_new_tokens, a.batch_size))
        static, t_static = timed(lambda: static_batches(gen, prompts, a.max_new_tokens, a.batch_size))
        forced = forced_variants(gen, recs)
        (fresh, _), t_fresh = timed(lambda: forced_runs(gen, forced, a.max_new_tokens, a.batch_size, False))
        (reused, n_reused), t_reused = timed(lambda: forced_runs(gen, forced, a.max_new_tokens, a.batch_size, True))
    single = {k: strip(v, gen) for k, v in single.items()}
    static = {k: strip(v, gen) for k, v in static.items()}
    lengths = [len(v) for v in single.values()]
    tokens = sum(lengths)
    print(
        json.dumps(
            {
                "benchmark": "generation_until_eos_continuous_batching_vs_one_at_a_time",
                "model": a.model,
                "adapter": str(a.adapter) if a.adapter else f"quick LoRA, {a.train_steps} steps",
                "adapter_train_s": round(train_s, 1) if train_s else None,
                "dtype": str(gen.model.dtype).removeprefix("torch."),
                "threads": torch.get_num_threads(),
                "prompts": len(prompts),
                "batch_size": a.batch_size,
                "max_new_tokens": a.max_new_tokens,
                "new_tokens": tokens,
                "output_length": {
                    "mean": round(statistics.mean(lengths), 1),
                    "min": min(lengths),
                    "max": max(lengths),
                    "stopped_at_eos": sum(n < a.max_new_tokens for n in lengths),
                },
                "one_at_a_time_tokens_per_s": round(tokens / t_single, 1),
                "continuous_tokens_per_s": round(tokens / t_cont, 1),
                "static_batch_tokens_per_s": round(tokens / t_static, 1),
                "eos_speedup": round(t_single / t_cont, 2),
                "target_eos_speedup": 4.0,
                "static_batch_speedup": round(t_single / t_static, 2),
                "identical": batched == single,
                "static_identical": static == single,
                "forced_prompts": len(forced),
                "forced_prompt_tokens": sum(map(len, forced)),
                "prefix_tokens_reused": n_reused,
                "prefix_reuse_speedup": round(t_fresh / t_reused, 2),
                "prefix_reuse_identical": fresh == reused,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
