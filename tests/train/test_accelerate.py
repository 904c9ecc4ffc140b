"""Data-parallel training through accelerate: two CPU processes (gloo) on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tracekd.data.config import DatasetConfig
from tracekd.prepare import prepare


def test_accelerate_launch_two_cpu_processes(tmp_path):
    prepare(DatasetConfig(name="synthetic-babi", size=40), "correct", "tagged", 0, tmp_path / "data")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "tracekd",
        "train",
        "--data",
        str(tmp_path / "data"),
        "--model",
        "tiny-random",
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--grad-accum",
        "1",
        "--use-cpu",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert s["world_size"] == 2 and s["steps"] == 2
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
