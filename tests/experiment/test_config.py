"""Config and option errors that used to surface late (at train time, after the baseline cell, or
as a traceback) are validation errors: one line naming the key, before anything runs, `--dry-run`
included."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.experiment.config import load_config
from tracekd.prepare import prepare
from tracekd.train.options import SCHEDULERS, TrainOptions
from tracekd.train.sft import train

BASE = {
    "name": "v",
    "datasets": [{"name": "synthetic-babi", "size": 20}],
    "models": ["tiny-random"],
    "conditions": ["baseline", "correct"],
    "seeds": [0],
    "train": {"max_steps": 2, "batch_size": 4, "grad_accum": 1},
}


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True, **kw)


@pytest.mark.parametrize(
    "override,needle",
    [
        *[
            (f"train.scheduler={s}", f"train.scheduler: unknown scheduler '{s}'")
            for s in (
                "reduce_lr_on_plateau",
                "greedy",
                "warmup_stable_decay",
                "cosine_with_min_lr",
                "cosine_warmup_with_min_lr",
            )
        ],
        ("datasets.0.test_fraction=0", "datasets[0].test_fraction: a run trains and tests"),
        ("datasets.0.test_fraction=1", "datasets[0].test_fraction: a run trains and tests"),
        ("train.epochs=.inf", "train.epochs: Input should be a finite number"),
        ("train.warmup=.inf", "train.warmup: Input should be a finite number"),
        ("train.lr=.inf", "train.lr: Input should be a finite number"),
        ("datasets.0.options=5", "datasets[0]: options: the dataset's options are keys of its entry or a mapping"),
        ("seeds=[true]", "seeds[0]: Input should be a valid integer"),
        ("train.lora_targets=[nonexistent_proj]", "train.lora_targets: model 'tiny-random' (models[0]) has no module"),
    ],
)
def test_late_errors_are_validation_errors(tmp_path, override, needle):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    with pytest.raises(InputError) as e:
        load_config(path, [override])
    assert f"{path}: {needle}" in str(e.value)


def test_dry_run_refuses_a_scheduler_that_would_crash(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    r = _cli("run", path, "train.scheduler=warmup_stable_decay", "--out", tmp_path / "run", "--dry-run")
    assert r.returncode == 2 and "train.scheduler: unknown scheduler" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_accepted_scheduler_builds(scheduler):
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    get_scheduler(scheduler, optimizer, num_warmup_steps=1, num_training_steps=10)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("val") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, d)
    return d


def test_standalone_train_checks_lora_targets_and_max_length(tmp_path, data):
    r = _cli("train", "--data", data, "--model", "tiny-random", "--out", tmp_path / "o", "--lora-targets", "nope_proj")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--lora-targets: model 'tiny-random' has no module matching 'nope_proj'" in r.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="max_length: 16 tokens cut every example before its completion"):
        train(data, "tiny-random", tmp_path / "o2", TrainOptions(max_length=16, max_steps=2, batch_size=2))
    assert not (tmp_path / "o2" / "adapter").exists()


def test_a_run_checks_max_length_before_any_cell(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    r = _cli("run", path, "train.max_length=16", "--out", tmp_path / "run")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "train.max_length: synthetic-babi/tiny-random/correct/seed-0: 16 tokens cut every example" in r.stderr
    assert not (tmp_path / "run" / "cells").exists()  # not even the baseline cell ran
