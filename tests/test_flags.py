"""Each option is defined once, in its options model: `tracekd train` / `generate` / `prepare`
offer every field as a flag whose default is the model's, and `tracekd run CONFIG KEY=VALUE ...`
overrides config keys, recorded in the run's config.json."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Literal

import pytest
import typer
import yaml
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from tracekd import cli
from tracekd.data.base import REGISTRY
from tracekd.errors import InputError
from tracekd.experiment import runner
from tracekd.experiment.config import load_config
from tracekd.flags import Flags, with_flags
from tracekd.generate.options import GenerateOptions
from tracekd.train.options import TrainOptions

BASE = {
    "name": "over",
    "datasets": [{"name": "synthetic-babi", "size": 20}],
    "models": ["tiny-random"],
    "conditions": ["baseline", "correct"],
    "train": {"max_steps": 2},
}


def _params(command: str) -> set[str]:
    group = typer.main.get_command(cli.app)
    return {p.name for p in group.commands[command].params}


def test_every_option_of_the_models_is_a_flag():
    assert set(TrainOptions.model_fields) <= _params("train")
    assert set(GenerateOptions.model_fields) <= _params("generate")
    for cls in REGISTRY.values():  # every registered dataset's options
        assert set(cls.Options.model_fields) <= _params("prepare")


def test_a_flag_not_given_is_the_models_default(monkeypatch, tmp_path):
    got = {}

    def record(key, opts, result):
        got[key] = opts
        return result

    monkeypatch.setattr("tracekd.train.sft.train", lambda data, model, out, opts, resume: record("opts", opts, {}))
    r = CliRunner().invoke(
        cli.app,
        [
            "train",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--lora-r",
            "8",
            "--no-group-by-length",
            "--lora-targets",
            "q_proj",
            "--lora-targets",
            "v_proj",
        ],
    )
    assert r.exit_code == 0, r.output
    assert got["opts"] == TrainOptions(lora_r=8, group_by_length=False, lora_targets=["q_proj", "v_proj"])
    monkeypatch.setattr(
        "tracekd.generate.run.generate",
        lambda data, model, out, adapter, opts: record("gen", opts, {"generated": 0, "already_done": 0, "total": 0}),
    )
    r = CliRunner().invoke(
        cli.app, ["generate", "--data", str(tmp_path), "--out", str(tmp_path / "p.jsonl"), "--backend", "hf"]
    )
    assert r.exit_code == 0, r.output
    assert got["gen"] == GenerateOptions(backend="hf")


def test_flags_follow_any_options_model():
    """A field added to a model is a flag, with its type, its bounds and the model's default."""

    class Knobs(BaseModel):
        steps: int = Field(3, ge=1, description="Steps.")
        rate: float = 0.5
        fast: bool = False
        maybe: bool | None = None
        mode: Literal["a", "b"] = "a"
        names: list[str] | None = None
        hidden: int = Field(1, json_schema_extra={"flag": None})

    app = typer.Typer()
    seen = []

    @app.command()
    @with_flags(knobs=Flags(Knobs))
    def go(knobs: Knobs | None = None) -> None:
        seen.append(knobs)

    @app.command()
    def other() -> None:
        pass

    runner_ = CliRunner()
    assert (
        runner_.invoke(
            app, ["go", "--steps", "5", "--fast", "--no-maybe", "--mode", "b", "--names", "x", "--names", "y"]
        ).exit_code
        == 0
    )
    assert runner_.invoke(app, ["go"]).exit_code == 0
    assert seen == [Knobs(steps=5, fast=True, maybe=False, mode="b", names=["x", "y"]), Knobs()]
    assert runner_.invoke(app, ["go", "--hidden", "2"]).exit_code != 0  # kept off the command line
    help_text = runner_.invoke(app, ["go", "--help"]).output
    assert "Steps. (default: 3)" in help_text


def _config(tmp_path, **change):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    return path


def test_overrides_change_the_config_and_are_recorded(tmp_path):
    path = _config(tmp_path)
    overrides = ["train.lr=1e-4", "seeds=[0,1]", "datasets.0.size=30", "generate.max_new_tokens=12", "template=tagged"]
    cfg = load_config(path, overrides)
    assert (cfg.train.lr, cfg.seeds, cfg.datasets[0].options.size, cfg.generate.max_new_tokens, cfg.template) == (
        1e-4,
        [0, 1],
        30,
        12,
        "tagged",
    )
    assert cfg.train.max_steps == 2  # the file's other keys stay
    run = tmp_path / "run"
    runner._check_run_folder(cfg, run)
    stored = json.loads((run / "config.json").read_text())
    assert stored["overrides"] == overrides and stored["train"]["lr"] == 1e-4 and stored["seeds"] == [0, 1]
    runner._check_run_folder(load_config(path, overrides), run)  # the same config: accepted
    with pytest.raises(InputError, match="different config"):
        runner._check_run_folder(load_config(path), run)
    # the same config written into the file instead of overrides is the same run
    same = _config(
        tmp_path,
        seeds=[0, 1],
        template="tagged",
        train={"max_steps": 2, "lr": 1e-4},
        datasets=[{"name": "synthetic-babi", "size": 30}],
        generate={"max_new_tokens": 12},
    )
    runner._check_run_folder(load_config(same), run)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("train.lr", "is not KEY=VALUE"),
        ("train.lrr=1", "train.lrr: unknown key"),
        ("datasets.3.size=1", "'3' is not an index of a list of 1"),
        ("seeds=[0", "override 'seeds=[0': not valid YAML"),
        ("train.lr=-1", "train.lr: Input should be greater than 0"),
        ("datasets.0.preset=paper", "datasets[0].preset: dataset 'synthetic-babi' does not take this option"),
    ],
)
def test_bad_overrides_are_one_clear_error(tmp_path, override, needle):
    with pytest.raises(InputError) as e:
        load_config(_config(tmp_path), [override])
    assert needle in str(e.value)


def test_run_takes_overrides_on_the_command_line(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "run",
            str(_config(tmp_path)),
            "seeds=[3,4]",
            "--dry-run",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in r.stdout.splitlines() if line.startswith("│")]
    assert [(row[2], row[3]) for row in rows] == [("baseline", "3"), ("correct", "3"), ("correct", "4")]
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "run", str(_config(tmp_path)), "train.lr", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "is not KEY=VALUE" in r.stderr
