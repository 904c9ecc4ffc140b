"""The trainer's own arguments: any SFTConfig field passes through from a config (`train.sft`), an
override (`train.sft.KEY=VALUE`) and `tracekd train --sft KEY=VALUE`, reaches the trainer, is
recorded (config.json, provenance: a resume with another value is refused), and is checked against
SFTConfig before anything runs; `report_to: tensorboard` writes TensorBoard's event files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tracekd import cli
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.experiment import runner
from tracekd.experiment.config import load_config
from tracekd.prepare import prepare
from tracekd.train.options import TrainOptions
from tracekd.train.sft import sft_config, train
from tracekd.train.sft_args import FIXED, OWN_OPTIONS, TRAINER_DEFAULTS

CONFIG = {
    "name": "passthrough",
    "datasets": [{"name": "synthetic-babi", "size": 20}],
    "models": ["tiny-random"],
    "conditions": ["correct"],
    "train": {
        "max_steps": 2,
        "batch_size": 2,
        "grad_accum": 1,
        "save_steps": 2,
        "logging_steps": 1,
        "report_to": "tensorboard",
        "sft": {"max_grad_norm": 0.5, "optim": "adafactor"},
    },
}


def _config(tmp_path, **change):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **change}))
    return path


def _tracekd(*args):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, d)
    return d


def test_config_fields_reach_the_trainer_and_tensorboard_logs(tmp_path, data):
    """From a config file and an override to the trainer's arguments, and TensorBoard's event files
    hold the logged losses; a resume with another passthrough value is refused."""
    pytest.importorskip("tensorboard", reason="the test extra (requirements.lock) pins tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(_config(tmp_path), ["train.sft.weight_decay=0.05"])
    assert cfg.train.sft == {"max_grad_norm": 0.5, "optim": "adafactor", "weight_decay": 0.05}
    out = tmp_path / "out"
    summary = train(data, "tiny-random", out, cfg.train)
    args = torch.load(out / "checkpoints" / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert (args.weight_decay, args.max_grad_norm, args.optim) == (0.05, 0.5, "adafactor")
    assert (args.learning_rate, args.save_total_limit) == (2e-4, 2)  # tracekd's own values stay
    assert summary["options"]["sft"] == cfg.train.sft
    events = list((out / "checkpoints" / "runs").glob("*/events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    logged = [(e["step"], e["loss"]) for e in summary["log_history"] if "loss" in e]
    assert len(logged) == 2
    scalars = acc.Scalars("train/loss")
    assert [s.step for s in scalars] == [step for step, _ in logged]
    assert [s.value for s in scalars] == pytest.approx([loss for _, loss in logged], rel=1e-6)
    with pytest.raises(InputError, match=r"options\.sft\.weight_decay: 0\.05 \(now 0\.1\)"):
        train(
            data,
            "tiny-random",
            out,
            cfg.train.model_copy(update={"sft": {**cfg.train.sft, "weight_decay": 0.1}}),
            resume=True,
        )
    # a value that changes no weight (the tracker's run name) may change on a resume
    renamed = cfg.train.model_copy(update={"sft": {**cfg.train.sft, "run_name": "again"}})
    assert train(data, "tiny-random", out, renamed, resume=True)["steps"] == 2


def test_no_tracker_by_default(tmp_path, data):
    train(data, "tiny-random", tmp_path / "out", TrainOptions(max_steps=1, batch_size=2, grad_accum=1, save_steps=1))
    assert not (tmp_path / "out" / "checkpoints" / "runs").exists()


def test_config_json_records_the_passthrough(tmp_path):
    path = _config(tmp_path)
    cfg = load_config(path, ["train.sft.weight_decay=0.05"])
    run = tmp_path / "run"
    runner._check_run_folder(cfg, run)
    assert json.loads((run / "config.json").read_text())["train"]["sft"]["weight_decay"] == 0.05
    with pytest.raises(InputError, match="different config"):
        runner._check_run_folder(load_config(path, ["train.sft.weight_decay=0.1"]), run)
    # a config.json from before `train.sft` existed is the same config while sft is empty
    old_run = tmp_path / "old"
    old_run.mkdir()
    plain = load_config(path, ["train.sft={}"])
    stored = json.loads(plain.model_dump_json())
    del stored["train"]["sft"]
    (old_run / "config.json").write_text(json.dumps(stored))
    runner._check_run_folder(plain, old_run)
    with pytest.raises(InputError, match="different config"):
        runner._check_run_folder(cfg, old_run)


@pytest.mark.parametrize(
    "override,needle",
    [
        (
            "train.sft.weight_decya=0.01",
            "train.sft: 'weight_decya' is not a field of trl's SFTConfig (did you mean 'weight_decay'?)",
        ),
        ("train.sft.weight_decay=heavy", "train.sft: weight_decay='heavy': Input should be a valid number"),
        ("train.sft.optim=adamw_torchh", "train.sft: optim='adamw_torchh': adamw_torchh is not a valid OptimizerNames"),
        ("train.sft.learning_rate=1e-3", "train.sft: learning_rate is set by tracekd's option lr (train.lr, --lr)"),
        ("train.sft.output_dir=x", "train.sft: output_dir is tracekd's"),
    ],
)
def test_a_bad_passthrough_key_stops_the_run_before_anything(tmp_path, override, needle):
    r = _tracekd("run", _config(tmp_path), override, "--out", tmp_path / "run")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in " ".join(lines), r.stderr
    assert not (tmp_path / "run").exists()


def test_train_takes_sft_flags(monkeypatch, tmp_path):
    got = {}
    monkeypatch.setattr(
        "tracekd.train.sft.train", lambda data, model, out, opts, resume: got.setdefault("o", opts) and {}
    )
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    r = CliRunner().invoke(cli.app, [*argv, "--sft", "weight_decay=0.01", "--sft", "optim=adafactor"])
    assert r.exit_code == 0, r.output
    assert got["o"].sft == {"weight_decay": 0.01, "optim": "adafactor"}
    r = _tracekd(*argv, "--sft", "weight_decya=0.01")
    assert r.returncode == 2
    assert "--sft: 'weight_decya' is not a field of trl's SFTConfig (did you mean 'weight_decay'?)" in r.stderr
    assert not (tmp_path / "o").exists()
    r = _tracekd(*argv, "--lr", "1e-3", "--sft", "learning_rate=1e-3")
    assert r.returncode == 2 and "learning_rate is set by tracekd's option lr (train.lr, --lr)" in r.stderr


def test_every_argument_tracekd_sets_is_refused_or_replaceable(monkeypatch, tmp_path):
    """No passthrough key is silently overwritten by tracekd, and none collides with one it sets:
    what `sft_config` passes is an option of tracekd's (refused), fixed by tracekd (refused), or a
    default the passthrough replaces."""
    seen = {}
    monkeypatch.setattr("trl.SFTConfig", lambda **kw: seen.update(kw) or type("A", (), {"n_gpu": 1})())
    sft_config(TrainOptions(), tmp_path, bf16=False)
    replaceable = set(TRAINER_DEFAULTS) | {"dataloader_pin_memory"}
    assert set(seen) <= set(OWN_OPTIONS) | set(FIXED) | replaceable
    seen.clear()
    sft_config(TrainOptions(sft={"save_total_limit": 5, "dataloader_pin_memory": True}), tmp_path, bf16=False)
    assert (seen["save_total_limit"], seen["dataloader_pin_memory"]) == (5, True)
