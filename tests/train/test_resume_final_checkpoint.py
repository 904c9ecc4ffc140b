"""A run killed after its last checkpoint but before train_summary.json resumes to the same result:
no extra optimiser step (max_steps not a multiple of the steps per epoch)."""

from __future__ import annotations

from safetensors.torch import load_file

from tracekd.data.config import DatasetConfig
from tracekd.prepare import prepare
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train


def test_a_kill_after_the_final_checkpoint_takes_no_extra_step(tmp_path):
    data = tmp_path / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=40), "correct", "tagged", 0, data)  # 32 train: 16 steps/epoch
    opts = TrainOptions(max_steps=25, batch_size=2, grad_accum=1, save_steps=5, scheduler="constant", warmup=0)
    out = tmp_path / "out"
    first = train(data, "tiny-random", out, opts)
    assert first["steps"] == 25
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    (out / "train_summary.json").unlink()  # killed after checkpoint-25, before the summary
    again = train(data, "tiny-random", out, opts, resume=True)
    assert again["steps"] == 25
    resumed = load_file(out / "adapter" / "adapter_model.safetensors")
    assert all((weights[k] == resumed[k]).all() for k in weights)
    assert again["resumed_from"].endswith("checkpoint-25")
