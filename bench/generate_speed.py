"""Benchmark: batched greedy generation vs one prompt at a time (the paper's inference loop).

Prints JSON: new tokens/s of each way on the same prompts, their ratio, whether the outputs are
token-for-token identical, and the peak memory of each (each way runs in its own process).
Two measurements: `fixed_length` decodes exactly --max-new-tokens per prompt (decoding
throughput, the usual way to benchmark generation); `until_eos` stops at EOS as real runs do
(with an untrained model most outputs are short, so the prompt pass dominates: on a CPU that part
is compute-bound and batching cannot speed it up).
Default: SmolLM2-135M, 32 synthetic bAbI test prompts, 256 new tokens (a trace-length output; the paper
allowed 256-300), one batch of 32. On 2 CPU cores it takes about 7 minutes.
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


def worker(data: str, model: str, batch_size: int, n: int, max_new_tokens: int, out: str, fixed: bool) -> None:
    from tracekd.generate.hf import HFGenerator
    from tracekd.models import resolve
    from tracekd.traces.records import read_sft_records

    recs = read_sft_records(Path(data), "test")[:n]
    gen = HFGenerator(resolve(model))
    prompts = [(r["id"], r["prompt"]) for r in recs]
    t = time.perf_counter()
    outputs = dict(x for b in gen.generate(prompts, max_new_tokens, batch_size, min_new_tokens=max_new_tokens if fixed else None)
                   for x in b)
    dt = time.perf_counter() - t
    tokens = sum(len(gen.tok(o, add_special_tokens=False)["input_ids"]) for o in outputs.values())
    Path(out).write_text(json.dumps({"seconds": dt, "new_tokens": tokens, "outputs": outputs,
                                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--worker", nargs=3, metavar=("BATCH", "OUT", "FIXED"))
    ap.add_argument("--data")
    a = ap.parse_args()
    if a.worker:
        worker(a.data, a.model, int(a.worker[0]), a.n, a.max_new_tokens, a.worker[1], a.worker[2] == "1")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "tracekd", "prepare", "--dataset", "synthetic-babi", "--size", str(5 * a.n),
                        "--template", "tagged", "--out", str(tmp / "data")], check=True, capture_output=True)
        report = {"benchmark": "generation_batched_vs_one_at_a_time", "model": a.model, "prompts": a.n,
                  "batch_size": a.batch_size, "max_new_tokens": a.max_new_tokens, "target_speedup": 8.0}
        for mode, fixed in (("fixed_length", "1"), ("until_eos", "0")):
            res = {}
            for name, bs in (("batched", a.batch_size), ("one_at_a_time", 1)):
                out = tmp / f"{mode}-{name}.json"
                subprocess.run([sys.executable, __file__, "--model", a.model, "--n", str(a.n), "--max-new-tokens", str(a.max_new_tokens),
                                "--data", str(tmp / "data"), "--worker", str(bs), str(out), fixed], check=True, capture_output=True)
                res[name] = json.loads(out.read_text())
            b, s = res["batched"], res["one_at_a_time"]
            tps_b, tps_s = b["new_tokens"] / b["seconds"], s["new_tokens"] / s["seconds"]
            report[mode] = {
                "batched_tokens_per_s": round(tps_b, 1), "one_at_a_time_tokens_per_s": round(tps_s, 1),
                "speedup": round(tps_b / tps_s, 2), "identical_outputs": b["outputs"] == s["outputs"],
                "new_tokens": b["new_tokens"],
                "batched_peak_rss_mb": round(b["peak_rss_mb"]), "one_at_a_time_peak_rss_mb": round(s["peak_rss_mb"]),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
