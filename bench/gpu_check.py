"""The device check (bench/gpu_check.sh runs it): what holds on one GPU, written to one JSON.

1. `tracekd run` of a small grid on the tiny Llama 3 model (`tiny-random-llama3`): a baseline cell
   and two trained cells, so generation (vLLM when it imports) runs in three engines one after
   another and training (QLoRA) runs after an engine in the same process;
2. the same on the real Llama-3.2-1B architecture with random weights, built here from its
   published config with the tiny model's tokenizer (no download): a baseline and a trained cell;
3. `bench/gpu_lora_sft.py`: LoRA training throughput and MFU against the bf16 matmul peak
   measured in the same run (goal: 0.35), plain and with the levers that import.

Each step records its exit status, time and what its outputs show (cells done, QLoRA used, the
generation backend, train_summary's batch and devices). No network: HF_HUB_OFFLINE is set.

`--dry`: the same steps on the CPU, small (the `hf` backend, no QLoRA, a 2-layer model of the 1B
shape's vocabulary, a tiny bench): what `make test` runs (tests/test_devices.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gpu_lora_sft import LLAMA_3_2_1B  # noqa: E402

GOAL_MFU = 0.35


def environment() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpus_visible": torch.cuda.device_count() if cuda else 0,
        "imports": {m: importlib.util.find_spec(m) is not None for m in ("vllm", "bitsandbytes", "liger_kernel")},
    }


def _config(name: str, model: str, conditions: list[str], dry: bool, gpu: dict[str, Any]) -> dict[str, Any]:
    train: dict[str, Any] = {"max_steps": 1 if dry else 8, "batch_size": 4, "grad_accum": 1, "save_steps": 50}
    train.update({"use_cpu": True} if dry else {"qlora": gpu["imports"]["bitsandbytes"]})
    backend = "vllm" if gpu["imports"]["vllm"] and not dry else "hf"
    return {
        "name": name,
        "datasets": [{"name": "synthetic-babi", "size": 40, "limit_test": 2 if dry else 16}],
        "models": [{"name": "m", "model": model}],
        "conditions": conditions,
        "seeds": [0],
        "template": "tagged",
        "train": {**train, "max_length": 512, "group_by_length": False},
        "generate": {"backend": backend, "max_new_tokens": 8 if dry else 64, "batch_size": 16},
    }


def run_grid(work: Path, cfg: dict[str, Any], timeout: int) -> dict[str, Any]:
    """`tracekd run` in a child process; what its run folder shows."""
    (work / f"{cfg['name']}.yaml").write_text(yaml.safe_dump(cfg))
    out = work / cfg["name"]
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "run", str(work / f"{cfg['name']}.yaml"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    cells = sorted(out.glob("cells/*/*/*/*"))
    summaries = [json.loads(p.read_text()) for p in out.glob("cells/*/*/*/*/train/train_summary.json")]
    return {
        "returncode": r.returncode,
        "seconds": round(time.perf_counter() - t, 1),
        "backend": cfg["generate"]["backend"],
        "cells": len(cells),
        "cells_done": sum((c / "cell.json").is_file() for c in cells),
        "results_json": (out / "results.json").is_file(),
        "trained": [
            {
                k: s.get(k)
                for k in ("qlora", "precision", "steps", "batch_size_per_step", "effective_batch_size", "device")
            }
            | {"tokens_per_s": round(s["tokens_per_s"] or 0)}
            for s in summaries
        ],
        "stderr_tail": r.stderr[-1500:] if r.returncode else "",
    }


def build_llama_1b(folder: Path, dry: bool) -> Path:
    """Llama-3.2-1B's architecture with random weights (a 2-layer, 64-wide one of its vocabulary
    in the dry mode) and the tiny Llama 3 tokenizer (its ids lie inside the vocabulary)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from tracekd.models.presets import cache_dir
    from tracekd.models.tiny import local_folder

    shape = dict(LLAMA_3_2_1B)
    if dry:
        shape.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16)
    tok = AutoTokenizer.from_pretrained(local_folder("llama3", cache_dir()))
    cfg = LlamaConfig(
        **shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run_bench(dry: bool, timeout: int) -> list[dict[str, Any]]:
    """gpu_lora_sft.py plain and with each lever that can run here."""
    env = environment()
    variants = [[]]
    if not dry:
        variants += [["--lora-dropout", "0"], ["--liger"] if env["imports"]["liger_kernel"] else None]
        variants += [["--liger", "--lora-dropout", "0"] if env["imports"]["liger_kernel"] else None]
    runs = []
    for extra in [v for v in variants if v is not None]:
        cmd = [sys.executable, str(ROOT / "bench" / "gpu_lora_sft.py"), *(["--dry"] if dry else []), *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        try:
            result = json.loads(r.stdout)
        except ValueError:
            result = {"error": r.stderr[-1500:]}
        runs.append({"returncode": r.returncode, **result})
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry", action="store_true", help="On the CPU, small (what the tests run).")
    ap.add_argument("--work", type=Path, required=True, help="A scratch folder.")
    ap.add_argument("--out", type=Path, required=True, help="The JSON written.")
    a = ap.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    a.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    env = environment()
    report: dict[str, Any] = {"check": "gpu_check", "dry": a.dry, "date": time.strftime("%Y-%m-%d %H:%M"), **env}
    limit = 240 if a.dry else 420
    # on the device: three engines in a row and two QLoRA trainings after one; dry: fewer cells
    tiny = ["baseline", "correct"] + ([] if a.dry else ["answer_only"])
    report["tiny"] = run_grid(a.work, _config("tiny", "tiny-random-llama3", tiny, a.dry, env), limit)
    model = build_llama_1b(a.work / "llama-3.2-1b-random", a.dry)
    big = ([] if a.dry else ["baseline"]) + ["correct"]
    report["llama_1b_random"] = run_grid(a.work, _config("llama1b", str(model), big, a.dry, env), limit)
    report["bench"] = run_bench(a.dry, limit)
    best = max((r.get("best_mfu_vs_measured_peak") or 0 for r in report["bench"]), default=0)
    grids = (report["tiny"], report["llama_1b_random"])
    report["held"] = {
        "tracekd_run_tiny": report["tiny"]["returncode"] == 0 and report["tiny"]["cells_done"] == len(tiny),
        "tracekd_run_llama_1b_random": report["llama_1b_random"]["returncode"] == 0
        and report["llama_1b_random"]["cells_done"] == len(big),
        "qlora": all(t["qlora"] for g in grids for t in g["trained"]) and not a.dry,
        "vllm_engines_in_a_row": all(g["backend"] == "vllm" and g["returncode"] == 0 for g in grids),
        "training_after_vllm": report["tiny"]["backend"] == "vllm" and report["tiny"]["cells_done"] == len(tiny),
        "mfu_goal": best >= GOAL_MFU,
    }
    report["best_mfu_vs_measured_peak"] = best
    report["seconds"] = round(time.perf_counter() - start, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["held"]))


if __name__ == "__main__":
    main()
