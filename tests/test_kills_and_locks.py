"""Processes against each other and against kills: folder locks (a real second process), exact
resume after real SIGKILLs (adapter weights compared), Ctrl-C, leftovers of a kill, atomic
multi-condition prepare, no network, byte-stable adapter config."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

TRACEKD = [sys.executable, "-m", "tracekd"]


def _cli(*args, env=None, **kw):
    return subprocess.run([*TRACEKD, *map(str, args)], capture_output=True, text=True, env=env, **kw)


def _start(*args, env=None):
    return subprocess.Popen(
        [*TRACEKD, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for(cond, proc, timeout=240):
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard") / "data"
    r = _cli("prepare", "--dataset", "synthetic-babi", "--size", 40, "--template", "tagged", "--out", d)
    assert r.returncode == 0, r.stderr
    return d


# -- locks --------------------------------------------------------------------------------------
HOLD = """
import sys, time
from tracekd.lock import folder_lock
with folder_lock(sys.argv[1], "test", lock_name=sys.argv[2]):
    print("held", flush=True)
    time.sleep(300)
"""


def _holder(folder: Path, lock_name: str = ".tracekd.lock"):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), lock_name], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.parametrize("command", ["train", "generate", "prepare"])
def test_a_locked_folder_refuses_a_second_process_and_a_sigkill_frees_it(tmp_path, data, command):
    out = tmp_path / "out"
    args = {
        "train": ["train", "--data", data, "--model", "tiny-random", "--out", out, "--max-steps", 1, "--batch-size", 2],
        "generate": [
            "generate",
            "--data",
            data,
            "--model",
            "tiny-random",
            "--out",
            out / "p.jsonl",
            "--limit",
            2,
            "--max-new-tokens",
            2,
        ],
        "prepare": ["prepare", "--dataset", "synthetic-babi", "--size", 20, "--out", out],
    }[command]
    holder = _holder(out, ".p.jsonl.lock" if command == "generate" else ".tracekd.lock")
    r = _cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"another tracekd process (pid {holder.pid}) is working in this folder" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [".p.jsonl.lock" if command == "generate" else ".tracekd.lock"]
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    r = _cli(*args)  # no stale lock
    assert r.returncode == 0, r.stderr[-2000:]


def test_two_runs_on_one_folder(tmp_path):
    cfg = {
        "name": "lock",
        "datasets": [{"name": "synthetic-babi", "size": 40}],
        "models": ["tiny-random"],
        "conditions": ["correct"],
        "seeds": [0],
        "template": "tagged",
        "train": {"max_steps": 10, "batch_size": 4, "grad_accum": 1, "save_steps": 5},
        "generate": {"max_new_tokens": 8, "batch_size": 4},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    first = _start("run", tmp_path / "c.yaml", "--out", tmp_path / "run")
    _wait_for(lambda: (tmp_path / "run" / "config.json").is_file(), first)
    second = _cli("run", tmp_path / "c.yaml", "--out", tmp_path / "run")
    # the one cell is the first process's: the second leaves it alone (processes share a folder)
    assert second.returncode == 0 and "1 cell(s) still running in other processes" in second.stdout, second.stderr
    assert "done: " not in second.stdout
    _, err = first.communicate()
    assert first.returncode == 0, err[-2000:]
    preds = [
        json.loads(x)["id"]
        for x in (
            tmp_path / "run" / "cells" / "synthetic-babi" / "tiny-random" / "correct" / "seed-0" / "predictions.jsonl"
        ).open()
    ]
    test = (tmp_path / "run" / "data" / "synthetic-babi" / "correct" / "seed-0" / "test.jsonl").read_text().splitlines()
    assert len(preds) == len(set(preds)) == len(test) == 10
    assert _cli("run", tmp_path / "c.yaml", "--out", tmp_path / "run").returncode == 0  # and again, later


# -- exact resume -----------------------------------------------------------------------------
def _adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter" / "adapter_model.safetensors")


@pytest.mark.parametrize("group_by_length,kills", [(True, (5, 10)), (False, (4, 9))])
def test_resume_after_sigkills_gives_the_same_weights(tmp_path, data, group_by_length, kills):
    """30 examples, 4 optimiser steps per epoch, 3 epochs. Killed (SIGKILL, a real process) in
    epoch 2 (or at the end of epoch 1) and again in epoch 3, then resumed: the adapter weights are
    the uninterrupted run's to the last bit, and so is every logged loss (the order of each epoch
    is restored). On the old code the grouped run diverged at the first resumed step."""
    import torch

    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    opts = TrainOptions(
        epochs=3, batch_size=4, grad_accum=2, save_steps=1, lr=5e-3, logging_steps=1, group_by_length=group_by_length
    )
    ref = train(data, "tiny-random", tmp_path / "ref", opts)
    run = tmp_path / "run"
    for step in kills:
        p = _start(
            "train",
            "--data",
            data,
            "--model",
            "tiny-random",
            "--out",
            run,
            "--epochs",
            3,
            "--batch-size",
            4,
            "--grad-accum",
            2,
            "--save-steps",
            1,
            "--lr",
            "5e-3",
            "--logging-steps",
            1,
            "--group-by-length" if group_by_length else "--no-group-by-length",
            "--resume",
        )
        _wait_for(lambda step=step: (run / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").is_file(), p)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        assert not (run / "train_summary.json").exists()
    summary = train(data, "tiny-random", run, opts, resume=True)
    assert summary["steps"] == ref["steps"] == 12 and int(summary["resumed_from"].rsplit("-", 1)[1]) >= kills[-1]
    a, b = _adapter(tmp_path / "ref"), _adapter(run)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), max((a[k] - b[k]).abs().max().item() for k in a)
    losses = [{h["step"]: h["loss"] for h in s["log_history"] if "loss" in h} for s in (ref, summary)]
    assert len(losses[1]) == 12 and losses[0] == losses[1]


def test_adapter_config_is_byte_stable(tmp_path, data):
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        r = _cli(
            "train",
            "--data",
            data,
            "--model",
            "tiny-random",
            "--out",
            out,
            "--max-steps",
            1,
            "--batch-size",
            2,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append((out / "adapter" / "adapter_config.json").read_bytes())
    assert outs[0] == outs[1]
    targets = json.loads(outs[0])["target_modules"]
    assert targets == sorted(targets) and len(targets) == 14  # 7 linear layers x 2 blocks


# -- Ctrl-C and what a kill leaves ----------------------------------------------------------------
def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path, data):
    out = tmp_path / "out"
    p = _start(
        "train",
        "--data",
        data,
        "--model",
        "tiny-random",
        "--out",
        out,
        "--max-steps",
        500,
        "--save-steps",
        3,
        "--batch-size",
        2,
        "--grad-accum",
        1,
    )
    _wait_for(lambda: (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file(), p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and f"checkpoint(s) kept in {out / 'checkpoints'}" in line
    assert line.endswith(
        f"resume with: tracekd train --data {data} --model tiny-random --out {out} --max-steps 500 "
        "--save-steps 3 --batch-size 2 --grad-accum 1 --resume"
    )


def test_ctrl_c_in_a_run_names_the_folder_to_resume(tmp_path, monkeypatch, capsys):
    from tracekd import cli
    from tracekd.experiment import runner

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "name": "ctrlc",
                "datasets": [{"name": "synthetic-babi", "size": 20}],
                "models": ["tiny-random"],
                "conditions": ["baseline"],
            }
        )
    )
    monkeypatch.setattr(runner, "run_experiment", interrupted)
    monkeypatch.setattr(cli, "_on_interrupt", [])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["tracekd", "run", str(cfg)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted: 0 finished cell(s) kept in runs/ctrlc (an unfinished cell resumes from its last checkpoint "
        f"or its last generated batch); resume with: tracekd run {cfg} --out runs/ctrlc"
    )


def test_a_kill_during_a_write_leaves_temporaries_that_the_next_run_removes(tmp_path):
    cfg = {
        "name": "tmp",
        "datasets": [{"name": "synthetic-babi", "size": 20}],
        "models": ["tiny-random"],
        "conditions": ["baseline"],
        "seeds": [0],
        "generate": {"max_new_tokens": 4},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    data = tmp_path / "run" / "data" / "synthetic-babi" / "correct" / "seed-0"
    data.mkdir(parents=True)
    left = [data / ".train.jsonl.k2j4_x9a.tmp", tmp_path / "run" / ".results.json.abcdefgh.tmp"]
    for f in left:
        f.write_text('{"half": ')
    keep = data / "notes.tmp"
    keep.write_text("not ours")
    r = _cli("run", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not any(f.exists() for f in left) and keep.exists()
    assert not list((tmp_path / "run").rglob(".*.tmp"))
    # prepare cleans its own folder the same way
    stale = tmp_path / "p" / ".manifest.json.zzzzzzzz.tmp"
    stale.parent.mkdir()
    stale.write_text("{")
    assert _cli("prepare", "--dataset", "synthetic-babi", "--size", 20, "--out", tmp_path / "p").returncode == 0
    assert not stale.exists()


def test_a_starting_run_leaves_the_temporaries_of_a_report_being_written(tmp_path):
    """A process writing results.json / the report holds `.report.lock`, not the run lock: a run
    starting meanwhile waits for it before it removes temporary files (it deleted the writer's)."""
    from tracekd.experiment.config import load_config
    from tracekd.experiment.runner import REPORT_LOCK, _open_run_folder
    from tracekd.lock import folder_lock

    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "datasets": [{"name": "synthetic-babi", "size": 20}],
                "models": ["tiny-random"],
                "conditions": ["baseline"],
                "seeds": [0],
            }
        )
    )
    cfg, run = load_config(tmp_path / "c.yaml"), tmp_path / "run"
    live = run / ".results.json.abcdefgh.tmp"
    opened = threading.Event()
    with folder_lock(run, "report writer", lock_name=REPORT_LOCK):
        live.write_text('{"half": ')
        t = threading.Thread(target=lambda: (_open_run_folder(cfg, run), opened.set()))
        t.start()
        assert not opened.wait(1.0) and live.exists()  # waits while the writer holds the lock
    t.join(10)
    assert opened.is_set() and not live.exists()  # then cleans what a killed writer would have left


# -- atomic multi-condition prepare ----------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".tracekd.lock"
    }


def test_prepare_all_conditions_publishes_all_or_none(tmp_path):
    out = tmp_path / "out"
    r = _cli("prepare", "--dataset", "synthetic-babi", "--size", 40, "--condition", "all", "--out", out)
    assert r.returncode == 0, r.stderr
    before = _tree(out)
    assert len(before) == 18
    # one task only: a single label, so `swapped` (the last condition) cannot be built
    r = _cli(
        "prepare", "--dataset", "synthetic-babi", "--size", 40, "--subset", "qa1", "--condition", "all", "--out", out
    )
    assert r.returncode == 2 and "swapped condition needs examples with at least two different labels" in r.stderr
    assert _tree(out) == before
    assert not list(out.rglob(".*.tmp"))


KILL_BETWEEN_RENAMES = """
import os, sys
from tracekd import jsonio
from tracekd.cli import main
real, n = jsonio._replace, [0]
def replace_then_die(tmp, path):
    real(tmp, path)
    n[0] += 1
    if n[0] == 4:  # the journal, then train.jsonl, test.jsonl, manifest.json of the first condition
        os.kill(os.getpid(), 9)
jsonio._replace = replace_then_die
sys.argv = ["tracekd", *sys.argv[1:]]
main()
"""


def test_a_kill_between_the_renames_is_rolled_forward(tmp_path):
    from tracekd.jsonio import JOURNAL, recover, sha256_file

    out = tmp_path / "out"
    args = [
        "prepare",
        "--dataset",
        "synthetic-babi",
        "--size",
        40,
        "--condition",
        "correct",
        "--condition",
        "incorrect",
        "--out",
        out,
    ]
    assert _cli(*args).returncode == 0
    good = _tree(out)
    args[args.index(40)] = 60  # another size: every file changes
    p = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == -9, p.stderr[-2000:]
    half = _tree(out)
    assert JOURNAL in half and half["correct/manifest.json"] != good["correct/manifest.json"]
    assert half["incorrect/manifest.json"] == good["incorrect/manifest.json"]  # not yet renamed
    assert recover(out / JOURNAL)  # what the next prepare does first
    for cond in ("correct", "incorrect"):
        m = json.loads((out / cond / "manifest.json").read_text())
        assert m["options"]["size"] == 60
        assert all(sha256_file(out / cond / f) == v["sha256"] for f, v in m["files"].items())
    assert not (out / JOURNAL).exists() and not list(out.rglob(".*.tmp"))
    assert _cli(*args).returncode == 0 and _tree(out) == {k: v for k, v in _tree(out).items() if k != JOURNAL}


def test_recover_finishes_the_renames(tmp_path):
    from tracekd.jsonio import JOURNAL, Staged, recover

    s = Staged()
    s.json(tmp_path / "a" / "m.json", {"v": 1})
    s.json(tmp_path / "b" / "m.json", {"v": 2})
    journal = tmp_path / JOURNAL
    journal.write_text(json.dumps([[str(t), str(p)] for t, p in s.moves]))
    os.replace(*s.moves[0])  # killed after the first rename
    assert recover(journal) and not journal.exists()
    assert json.loads((tmp_path / "b" / "m.json").read_text()) == {"v": 2}
    assert not list(tmp_path.rglob("*.tmp"))


# -- no network ----------------------------------------------------------------------------------------
class _Listener:
    """A local 'proxy' that records every connection made to it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.seen.append(conn.recv(200))
            except OSError as e:
                self.seen.append(repr(e).encode())
            conn.close()


TRAIN_API = """
import sys
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train
train(sys.argv[1], "tiny-random", sys.argv[2], TrainOptions(max_steps=1, batch_size=2))
"""


def test_no_network_without_offline_flags(tmp_path, data):
    """Every connection goes through the proxy, which records it: `run` (the CLI) and `train` (the
    library, without the CLI's environment) make none."""
    proxy = _Listener()
    url = f"http://127.0.0.1:{proxy.port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    }
    env.update(
        HTTPS_PROXY=url, HTTP_PROXY=url, https_proxy=url, http_proxy=url, ALL_PROXY=url, NO_PROXY="", no_proxy=""
    )
    r = subprocess.run(
        [sys.executable, "-c", TRAIN_API, str(data), str(tmp_path / "t")], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = {
        "name": "net",
        "datasets": [{"name": "synthetic-babi", "size": 20}],
        "models": ["tiny-random"],
        "conditions": ["baseline", "correct"],
        "seeds": [0],
        "train": {"max_steps": 1, "batch_size": 2},
        "generate": {"max_new_tokens": 4},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = _cli("run", tmp_path / "c.yaml", "--out", tmp_path / "run", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    time.sleep(1)  # a background ping would have connected by now
    assert proxy.seen == []
    proxy.sock.close()
