"""Two processes converting SmolLM2 (or building a tiny model) into an empty cache at once: both
succeed with one folder, and the folder has the usual permissions (not mkdtemp's 0700)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

SMOLLM2 = "from tracekd.models.smollm2 import local_folder; print(local_folder())"
TINY = "import os; from pathlib import Path; from tracekd.models.tiny import local_folder; print(local_folder('llama', Path(os.environ['TRACEKD_CACHE'])))"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _race(tmp_path, code: str) -> str:
    env = {**os.environ, "TRACEKD_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    folders = {out.strip() for out, _ in outs}
    assert len(folders) == 1
    folder = folders.pop()
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~_umask()
    assert not [p for p in os.listdir(os.path.dirname(folder)) if p.startswith(".")]  # no leftover copy
    return folder


def test_two_first_uses_of_smollm2_at_once(tmp_path):
    folder = _race(tmp_path, SMOLLM2)
    assert os.path.isfile(os.path.join(folder, "model.safetensors"))


def test_two_first_builds_of_a_tiny_model_at_once(tmp_path):
    folder = _race(tmp_path, TINY)
    assert os.path.isfile(os.path.join(folder, "config.json"))
