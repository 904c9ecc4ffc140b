"""A training whose loss or gradient norm stops being finite is stopped with one line naming the
step; nothing is saved as its result, and a loss curve never shows a non-finite loss."""

from __future__ import annotations

import math

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.prepare import prepare
from tracekd.train.diagnostics import loss_trend
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train


def test_a_diverged_training_stops_naming_the_step(tmp_path):
    data = tmp_path / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, data)
    opts = TrainOptions(lr=1e30, max_steps=6, batch_size=2, grad_accum=1, save_steps=2, warmup=0, scheduler="constant")
    with pytest.raises(InputError, match=r"training diverged at step \d+: (loss|grad_norm) (nan|inf)"):
        train(data, "tiny-random", tmp_path / "out", opts)
    assert not (tmp_path / "out" / "train_summary.json").exists()
    assert not (tmp_path / "out" / "adapter").exists()


def test_the_loss_curve_leaves_out_non_finite_losses():
    history = [{"step": s, "loss": v} for s, v in [(1, 2.0), (2, math.nan), (3, 1.5), (4, math.inf)]]
    assert loss_trend(history)["curve"] == [[1.0, 2.0], [3.0, 1.5]]
