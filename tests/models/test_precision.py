"""`--precision auto|fp32|bf16`: what auto picks, bf16 training as autocast with fp32 LoRA weights
and optimiser state, bf16 generation weights, and the option in the CLI and in configs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.models import loading
from tracekd.prepare import prepare
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train


@pytest.mark.parametrize(
    "cuda,cuda_bf16,cpu_bf16,on_cpu,expected",
    [
        (False, False, True, False, True),  # an AMX / AVX512-BF16 CPU
        (False, False, False, False, False),  # a CPU that would emulate bf16: fp32
        (True, True, False, False, True),  # an Ampere+ card
        (True, False, True, False, False),  # an older card: the card decides, not the CPU
        (True, True, False, True, False),  # training forced on the CPU
    ],
)
def test_auto_picks_bf16_where_supported(monkeypatch, cuda, cuda_bf16, cpu_bf16, on_cpu, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    monkeypatch.setattr(loading, "cpu_bf16_supported", lambda: cpu_bf16)
    assert loading.use_bf16("auto", on_cpu=on_cpu) is expected
    assert loading.use_bf16("fp32", on_cpu=on_cpu) is False and loading.use_bf16("bf16", on_cpu=on_cpu) is True


def test_cpu_detection_reads_the_processor():
    import re
    from pathlib import Path

    flags = set(
        re.findall(
            r"\S+",
            next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""),
        )
    )
    assert loading.cpu_bf16_supported() == bool(flags & {"amx_bf16", "avx512_bf16"})
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        loading.use_bf16("fp16")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("prec") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=30, limit_train=8), "correct", "tagged", 0, d)
    return d


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bf16_training_is_autocast_with_fp32_adapters(data, tmp_path, precision):
    """bf16: the matrix products run in bf16 (autocast) and the frozen base weights are bf16, while
    the LoRA weights and the optimiser state stay fp32."""
    from transformers import TrainerCallback

    seen = {}

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            layer = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
            layer.register_forward_hook(
                lambda m, i, o: None if "matmul_dtype" in seen else seen.update(matmul_dtype=o.dtype)
            )
            seen["base_dtype"] = layer.weight.dtype

        def on_step_end(self, args, state, control, model=None, optimizer=None, **kw):
            seen["lora_dtypes"] = {p.dtype for p in model.parameters() if p.requires_grad}
            seen["state_dtypes"] = {t.dtype for s in optimizer.state.values() for t in s.values() if t.dim() > 0}

    s = train(
        data,
        "tiny-random",
        tmp_path / "o",
        TrainOptions(max_steps=2, batch_size=2, grad_accum=1, save_steps=1000, precision=precision),
        callbacks=[Watch()],
    )
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert seen["matmul_dtype"] == expected and s["precision"] == precision
    assert seen["base_dtype"] == expected and s["base_weights_dtype"] == str(expected).removeprefix("torch.")
    assert seen["lora_dtypes"] == {torch.float32} and seen["state_dtypes"] == {torch.float32}


def test_precision_in_the_cli_and_configs(tmp_path, data):
    from tracekd.experiment.config import load_config

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--model",
            "tiny-random",
            "--precision",
            "fp16",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    said = " ".join(r.stderr.replace("│", " ").split())  # the message as one line, out of its box
    assert (
        r.returncode == 2
        and "Invalid value for '--precision': Value error, 'fp16' is not one of 'auto', 'fp32', 'bf16'." in said
    )
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "train", "--data", str(data), "--out", str(tmp_path / "o"), "--bf16"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2 and "No such option: --bf16" in r.stderr  # one way: --precision
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: c\ndatasets: [{name: synthetic-babi, size: 20}]\nmodels: [tiny-random]\nconditions: [correct]\n"
        "train: {precision: bf16}\ngenerate: {precision: fp32}\n"
    )
    c = load_config(cfg)
    assert c.train.precision == "bf16" and c.generate.precision == "fp32"
    cfg.write_text(cfg.read_text().replace("train: {precision: bf16}", "train: {bf16: true}"))
    with pytest.raises(InputError, match=r"train\.bf16: unknown key"):
        load_config(cfg)
