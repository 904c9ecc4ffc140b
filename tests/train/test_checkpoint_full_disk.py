"""A full disk while saving a checkpoint is one line naming the checkpoints folder, exit code 2
(torch's writer raises a RuntimeError with a C++ trace, not an OSError)."""

from __future__ import annotations

import sys

import pytest
import torch

from tracekd.data.config import DatasetConfig
from tracekd.prepare import prepare

TORCH_MESSAGE = (
    "[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/0: file write failed"
)


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, monkeypatch, capsys):
    from tracekd import cli

    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, tmp_path / "d")

    def full(*a, **k):
        raise RuntimeError(TORCH_MESSAGE)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "o"
    argv = ["tracekd", "train", "--data", str(tmp_path / "d"), "--model", "tiny-random", "--out", str(out)]
    argv += ["--max-steps", "2", "--save-steps", "1", "--batch-size", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "Error" in line or "error" in line]
    assert len(errors) == 1 and "Traceback" not in errors[0]
    err = errors[0]
    assert err.startswith(f"error: {out / 'checkpoints'}: could not write a checkpoint (PytorchStreamWriter failed")
    assert "is the disk full?" in err
    assert not (out / "train_summary.json").exists()
