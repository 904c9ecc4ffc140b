"""Prepare's publish step: a Ctrl-C between the renames lets them finish (never one new file beside
an old manifest); a folder whose publish a kill left pending is refused by train, generate and
evaluate until prepare finishes it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.generate.run import generate
from tracekd.jsonio import JOURNAL, sha256_file
from tracekd.prepare import prepare
from tracekd.score.evaluate import evaluate
from tracekd.train.sft import train

CTRL_C_BETWEEN_RENAMES = """
import os, signal, sys
from tracekd import jsonio
from tracekd.cli import main
real, n = jsonio._replace, [0]
def replace_then_ctrl_c(tmp, path):
    real(tmp, path)
    n[0] += 1
    if n[0] == 2:  # the journal, then train.jsonl
        os.kill(os.getpid(), signal.SIGINT)
jsonio._replace = replace_then_ctrl_c
sys.argv = ["tracekd", *sys.argv[1:]]
main()
"""


def _consistent(folder):
    m = json.loads((folder / "manifest.json").read_text())
    return all(sha256_file(folder / f) == v["sha256"] for f, v in m["files"].items()), m


def test_ctrl_c_while_publishing_finishes_the_publish(tmp_path):
    out = tmp_path / "d"
    prepare(DatasetConfig(name="synthetic-babi", size=30), "correct", "tagged", 0, out)
    args = ["prepare", "--dataset", "synthetic-babi", "--size", "40", "--template", "tagged", "--out", str(out)]
    p = subprocess.run([sys.executable, "-c", CTRL_C_BETWEEN_RENAMES, *args], capture_output=True, text=True)
    assert p.returncode == 130, p.stderr[-2000:]
    assert "never a mix" in p.stderr and "nothing was written" not in p.stderr
    ok, manifest = _consistent(out)
    assert ok and manifest["options"]["size"] == 40  # the new result, whole
    assert not (out / JOURNAL).exists() and not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("multi", [False, True])
def test_a_pending_publish_is_refused_until_prepare_finishes_it(tmp_path, multi):
    out = tmp_path / "d"
    conditions = ["correct", "incorrect"] if multi else "correct"
    prepare(DatasetConfig(name="synthetic-babi", size=30), conditions, "tagged", 0, out)
    folder = out / "correct" if multi else out
    (out / JOURNAL).write_text("[]")  # what a kill between the renames leaves
    for use in (
        lambda: train(folder, "tiny-random", tmp_path / "t"),
        lambda: generate(folder, "tiny-random", tmp_path / "p.jsonl"),
        lambda: evaluate(folder, tmp_path / "p.jsonl", tmp_path / "s.json"),
    ):
        with pytest.raises(InputError, match=r"killed while publishing its files.*rerun that prepare"):
            use()
    assert not (tmp_path / "t").exists() and not (tmp_path / "p.jsonl").exists()
    prepare(DatasetConfig(name="synthetic-babi", size=30), conditions, "tagged", 0, out)
    assert not (out / JOURNAL).exists() and _consistent(folder)[0]
