"""The GPU path without a GPU (issue 25): one process trains on one GPU however many are visible,
a GPU preset never falls back to the CPU in silence, vLLM engines are shut down in order, several
`tracekd run` processes share one run folder, the accelerate configs ship and launch, the device
check's dry mode runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tracekd.errors import InputError
from tracekd.models import PRESETS, loading
from tracekd.train import sft
from tracekd.train.options import TrainOptions

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True, check=False, **kw
    )


def _fake_cuda(monkeypatch, n: int) -> None:
    """torch as on a machine with n CUDA devices, as far as building TrainingArguments goes."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)


# --- 1. several GPUs visible, one process ---


@pytest.mark.parametrize("gpus", [1, 8])
def test_one_process_trains_on_one_gpu_with_the_batch_as_asked(tmp_path, monkeypatch, capsys, gpus):
    """Without the fix the Trainer took all 8 with DataParallel: batch 32 per step, effective 128."""
    _fake_cuda(monkeypatch, gpus)
    args = sft.sft_config(TrainOptions(), tmp_path, bf16=False)
    assert str(args.device) == "cuda:0" and args.n_gpu == 1 and args.world_size == 1
    assert args.train_batch_size == 4  # what the Trainer's dataloader batches; DataParallel only when n_gpu > 1
    record = sft.batch_record(args)
    assert record == {
        "batch_size_per_step": 4,
        "effective_batch_size": 16,
        "devices_per_process": 1,
        "cuda_devices_visible": gpus,
    }
    said = capsys.readouterr().out
    assert ("accelerate launch --multi_gpu --num_processes 8" in said) == (gpus > 1)


# --- 2. a GPU preset never falls back to the CPU in silence ---


def test_a_gpu_preset_without_cuda_stops_with_one_line(tmp_path):
    from tracekd.data.config import DatasetConfig
    from tracekd.prepare import prepare

    data = tmp_path / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, data)
    r = _cli("train", "--data", data, "--model", "llama-3.2-1b-instruct", "--out", tmp_path / "o")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "is made for a CUDA GPU" in r.stderr and "--use-cpu" in r.stderr and "torch" in r.stderr
    assert not (tmp_path / "o").exists()
    cfg = {
        "name": "gpu",
        "datasets": [{"name": "synthetic-babi", "size": 20}],
        "models": ["qwen3-1.7b"],
        "conditions": ["baseline", "correct"],
        "seeds": [0],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = _cli("run", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "'qwen3-1.7b' is made for a CUDA GPU" in r.stderr and not (tmp_path / "run").exists()


def test_the_cuda_message_names_the_driver_the_installed_torch_needs(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert "driver >= 580.65.06" in loading.cuda_missing() and "nvidia-smi" in loading.cuda_missing()
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU build" in loading.cuda_missing()


def test_a_qlora_preset_without_bitsandbytes_stops_unless_no_qlora(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_bnb(name, *a, **k):
        if name == "bitsandbytes":
            raise ImportError("No module named 'bitsandbytes'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(loading, "cuda_available", lambda: True)
    monkeypatch.setattr(sft, "cuda_available", lambda: True)
    monkeypatch.setattr(sft, "cuda_memory_gib", lambda: 80.0)
    monkeypatch.setattr(builtins, "__import__", no_bnb)
    spec = PRESETS["llama-3.2-1b-instruct"]
    with pytest.raises(InputError, match=r"4-bit QLoRA, but bitsandbytes is not installed.*--no-qlora"):
        sft.device_policy(spec, TrainOptions())
    assert not sft.device_policy(spec, TrainOptions(qlora=False)).qlora  # asked for: LoRA on unquantised weights
    assert not sft.device_policy(spec, TrainOptions(full=True)).qlora


def test_use_cpu_is_the_explicit_way_to_train_a_gpu_preset_on_a_cpu(monkeypatch):
    monkeypatch.setattr(loading, "cuda_available", lambda: False)
    spec = PRESETS["qwen3-1.7b"]
    with pytest.raises(InputError, match="is made for a CUDA GPU"):
        sft.device_policy(spec, TrainOptions())
    policy = sft.device_policy(spec, TrainOptions(use_cpu=True))
    assert not policy.qlora
    sft.device_policy(PRESETS["tiny-random"], TrainOptions())  # a CPU model needs nothing
