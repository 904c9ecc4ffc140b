"""Devices, checked without a GPU: one process trains on one GPU however many are visible,
a GPU preset never falls back to the CPU in silence, vLLM engines are shut down in order, several
`tracekd run` processes share one run folder, the accelerate configs ship and launch, the device
check's dry mode runs."""

from __future__ import annotations

import importlib.machinery
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


# --- 6. several processes on one run folder ---

GRID = {
    "name": "shared",
    "datasets": [{"name": "synthetic-babi", "size": 30, "limit_test": 6}],
    "models": ["tiny-random"],
    "conditions": ["baseline", "answer_only", "correct"],
    "seeds": [0, 1],
    "template": "tagged",
    "train": {"max_steps": 2, "batch_size": 4, "grad_accum": 1, "save_steps": 2},
    "generate": {"max_new_tokens": 6, "batch_size": 6},
}


def _start_run(cfg: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tracekd", "run", str(cfg), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_a_grid_each_cell_done_once(tmp_path):
    """Two `tracekd run` on one folder: every cell done by exactly one of them, the report written
    once all are done, results.json the same as a single process's."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(GRID))
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    procs = [_start_run(tmp_path / "c.yaml", shared) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    done = [line.split("done: ", 1)[1].strip() for out, _ in outs for line in out.splitlines() if "done: " in line]
    keys = sorted(str(p.parent.relative_to(shared / "cells")) for p in (shared / "cells").glob("*/*/*/*/cell.json"))
    assert len(keys) == 5 and sorted(done) == keys  # each cell once: 1 baseline + 2 conditions x 2 seeds
    assert all(any("done: " in line for line in out.splitlines()) for out, _ in outs)  # both worked
    assert sum("report: " in out for out, _ in outs) >= 1
    r = _cli("run", tmp_path / "c.yaml", "--out", alone)
    assert r.returncode == 0, r.stderr[-3000:]

    def results(run: Path) -> bytes:
        return (run / "results.json").read_bytes().replace(str(run).encode(), b"RUN")

    assert results(shared) == results(alone)


# --- 3. vLLM engines in one `tracekd run` ---


def _recording_vllm(monkeypatch, events: list[str]) -> None:
    """A stand-in for the `vllm` module recording engine creation, generation and shutdown; an
    engine started while another is alive fails, as vLLM does when the card is not free."""
    import types

    alive = []

    class Engine:
        def shutdown(self):
            events.append("shutdown")
            alive.remove(self)

    class LLM:
        def __init__(self, model, **kw):
            assert not alive, "a second vLLM engine started while the first holds the card"
            self.llm_engine = Engine()
            alive.append(self.llm_engine)
            events.append("create")

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            events.append("generate")
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="out")]) for _ in prompts]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LoRARequest:
        def __init__(self, name, int_id, path):
            self.path = path

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora, request = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    vllm.lora, lora.request = lora, request
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # what find_spec reads (TRL asks)
        monkeypatch.setitem(sys.modules, name, module)
    from tracekd.generate import vllm_backend

    monkeypatch.setattr(vllm_backend, "available", lambda: True)


def test_each_vllm_engine_is_shut_down_before_the_next_stage(tmp_path, monkeypatch):
    from tracekd.experiment.config import load_config
    from tracekd.experiment.runner import run_experiment

    events: list[str] = []
    _recording_vllm(monkeypatch, events)
    original_train = sft.train

    def train(*args, **kw):
        events.append("train")
        return original_train(*args, **kw)

    monkeypatch.setattr(sft, "train", train)
    cfg = {**GRID, "conditions": ["baseline", "correct"], "seeds": [0], "generate": {"max_new_tokens": 4}}
    cfg["generate"]["backend"] = "vllm"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run_experiment(load_config(tmp_path / "c.yaml", []), tmp_path / "run")
    assert events == ["create", "generate", "shutdown", "train", "create", "generate", "shutdown"]


# --- 4. the shipped accelerate configs ---

ACCELERATE = ROOT / "configs" / "accelerate"


def _launch_args(config: str, extra: list[str] | None = None):
    """`accelerate launch --config_file configs/accelerate/CONFIG ...` as accelerate reads it."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    argv = ["--config_file", str(ACCELERATE / config), "--num_processes", "2", *(extra or [])]
    args = launch_command_parser().parse_args([*argv, "-m", "tracekd", "train", "--data", "D"])
    args, defaults, _ = _validate_launch_command(args)
    return args, defaults


def test_the_documented_configs_ship():
    doc = (ROOT / "docs" / "training.md").read_text()
    for name in ("ddp.yaml", "ds_zero2.yaml", "fsdp.yaml"):
        assert (ACCELERATE / name).is_file() and f"configs/accelerate/{name}" in doc


def test_ddp_config_launches_two_gloo_processes_and_rank0_saves_full_weights(tmp_path):
    from tracekd.data.config import DatasetConfig
    from tracekd.prepare import prepare

    prepare(DatasetConfig(name="synthetic-babi", size=40), "correct", "tagged", 0, tmp_path / "data")
    args, _ = _launch_args("ddp.yaml")
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / "ddp.yaml")]
    cmd += ["--num_processes", "2", "-m", "tracekd", "train", "--data", str(tmp_path / "data")]
    cmd += ["--model", "tiny-random", "--out", str(tmp_path / "o"), "--max-steps", "2", "--batch-size", "2"]
    cmd += ["--grad-accum", "1", "--use-cpu", "--full"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), "ACCELERATE_USE_CPU": "true"}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "o" / "train_summary.json").read_text())
    assert s["world_size"] == 2 and s["batch_size_per_step"] == 2 and s["effective_batch_size"] == 4
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    saved = load_file(tmp_path / "o" / "model" / "model.safetensors")
    whole = AutoModelForCausalLM.from_pretrained(tmp_path / "o" / "model").state_dict()
    assert saved.keys() <= whole.keys() and all(saved[k].shape == whole[k].shape for k in saved)
    assert len(saved) >= len(whole) - 1  # every weight (a tied head is stored once)


def _env() -> dict:
    import os

    return dict(os.environ)


def test_fsdp_config_reaches_tracekds_loading_and_saving(monkeypatch):
    """FSDP cannot run on a CPU (accelerate asks for a CUDA-like device): the config is read by
    accelerate's launcher, and the environment it gives the processes is what tracekd reads."""
    import types

    import transformers
    from accelerate.utils.launch import prepare_multi_gpu_env

    args, _ = _launch_args("fsdp.yaml")
    assert args.use_fsdp and args.num_processes == 2
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
    assert env["FSDP_USE_ORIG_PARAMS"] == "true"  # LoRA: frozen and trained parameters in one unit
    # QLoRA under FSDP: the 4-bit weights stored in the compute dtype, placed by FSDP (no device_map)
    captured = {}
    monkeypatch.setattr(loading, "qlora_available", lambda: True)
    monkeypatch.setattr(loading, "model_path", lambda spec: spec.source)
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM,
        "from_pretrained",
        classmethod(lambda cls, path, **kw: captured.update(kw) or "model"),
    )
    monkeypatch.setenv("ACCELERATE_USE_FSDP", env["ACCELERATE_USE_FSDP"])
    loading.load_model(PRESETS["llama-3.2-1b-instruct"], bf16=True)
    assert captured["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16
    assert "device_map" not in captured
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    captured.clear()
    loading.load_model(PRESETS["llama-3.2-1b-instruct"], bf16=True)
    assert captured["device_map"] == {"": 0} and captured["quantization_config"].bnb_4bit_quant_storage == torch.uint8
    # the final save gathers whole weights whatever the config's state dict type
    calls = []
    plugin = types.SimpleNamespace(set_state_dict_type=lambda t: calls.append(("state_dict_type", t)))
    trainer = types.SimpleNamespace(
        is_fsdp_enabled=True,
        accelerator=types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=plugin)),
        save_model=lambda out: calls.append(("save", out)),
        is_world_process_zero=lambda: False,
    )
    assert sft.save_final(trainer, None, PRESETS["tiny-random"], Path("OUT/model")) is False
    assert calls == [("state_dict_type", "FULL_STATE_DICT"), ("save", "OUT/model")]


def test_deepspeed_config_is_read_by_accelerates_deepspeed_path():
    """DeepSpeed needs CUDA: the config is read by accelerate's launcher as ZeRO-2 with the
    Trainer's values ('auto') for what tracekd's train options set."""
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    args, defaults = _launch_args("ds_zero2.yaml")
    assert args.use_deepspeed and args.zero_stage == 2 and args.num_processes == 2
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
    assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env  # 'auto': the Trainer's grad_accum
    lock = (ROOT / "requirements-gpu.lock").read_text().splitlines()
    assert "deepspeed==0.19.8" in lock
    extras = (ROOT / "pyproject.toml").read_text()
    assert 'deepspeed = ["deepspeed==0.19.8"]' in extras


# --- 7. the device check's dry mode ---


def test_device_check_dry_mode_runs_every_step_and_writes_what_held(tmp_path):
    out = tmp_path / "check.json"
    r = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry", str(out)],
        capture_output=True,
        text=True,
        env={**_env(), "PYTHON": sys.executable},
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry"] and report["held"]["tracekd_run_tiny"] and report["held"]["tracekd_run_llama_1b_random"]
    assert report["tiny"]["cells_done"] == 2 and report["llama_1b_random"]["cells_done"] == 1
    assert report["llama_1b_random"]["trained"][0]["steps"] == 1
    assert not report["held"]["qlora"] and not report["held"]["vllm_engines_in_a_row"]  # a CPU shows neither
    (bench,) = report["bench"]
    assert bench["returncode"] == 0 and bench["best_mfu_vs_measured_peak"] > 0
    assert bench["params_total"] > 128256 * 64  # the 1B shape's vocabulary
