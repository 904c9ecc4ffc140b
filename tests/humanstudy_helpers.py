"""Test helpers of `tracekd humanstudy`: prepared folders of the four paper trace types (rule-based
from `tracekd prepare`, teacher types from a hand-written `tracekd teach` folder), a study drawn from
them, a session driven through the app, and a real server subprocess on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tracekd.data.config import DatasetConfig
from tracekd.humanstudy.design import create
from tracekd.humanstudy.spec import load_spec
from tracekd.prepare import prepare

TYPES = ("rule", "teacher", "teacher_summary", "teacher_posthoc")
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
ROOT = Path(__file__).resolve().parents[1]


def make_sources(root: Path, size: int = 60, hostile: bool = False) -> Path:
    """Prepared folders `rule/` and `t/<teacher type>/` under root (synthetic-temporal)."""
    cfg = DatasetConfig(name="synthetic-temporal", size=size)
    prepare(cfg, "correct", "paper", 0, root / "rule")
    records = [json.loads(line) for s in ("train", "test") for line in (root / "rule" / f"{s}.jsonl").open()]
    (root / "teach").mkdir()
    with (root / "teach" / "teacher.jsonl").open("w") as f:
        for r in records:
            evil = HOSTILE if hostile else ""
            trace = f"First, look at the facts.{evil} {r['context'][0]['text']} So the answer is {r['answers'][0]}."
            rec = {
                "id": r["id"],
                "accepted": True,
                "trace": trace,
                "summary": f"The facts give {r['answers'][0]}.",
                "posthoc": f"Because {r['context'][-1]['text']} the answer is {r['answers'][0]}.",
            }
            f.write(json.dumps(rec) + "\n")
    prepare(cfg, ["teacher", "teacher_summary", "teacher_posthoc"], "paper", 0, root / "t", root / "teach")
    if hostile:  # a hostile question in every rule-based record too
        path = root / "rule" / "test.jsonl"
        recs = [json.loads(line) for line in path.open()]
        for r in recs:
            r["question"] = HOSTILE + r["question"]
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
        for t in TYPES[1:]:
            p = root / "t" / t / "test.jsonl"
            recs = [json.loads(line) for line in p.open()]
            for r in recs:
                r["question"] = HOSTILE + r["question"]
            p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return root


def write_spec(root: Path, **changes) -> Path:
    spec = {
        "name": "test-study",
        "seed": 0,
        "participants": 8,
        "items_per_participant": 8,
        "verification_share": 0.5,
        "attention_checks": 1,
        "types": {
            "rule": {"data": "rule"},
            **{t: {"data": f"t/{t}"} for t in TYPES[1:]},
        },
        "prolific": {"completion_code": "C0DE42", "redirect": False},
    }
    spec.update(changes)
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def make_study(root: Path, name: str = "study", **changes):
    study = create(load_spec(write_spec(root, **changes)), root / name)
    return study, root / name


PAGE = re.compile(r'name="page" value="(\d+)"')


def page_index(html: str) -> int:
    m = PAGE.search(html)
    assert m, html[:2000]
    return int(m.group(1))


def item_answers(html: str, value: int = 4, verify: str = "yes") -> dict[str, str]:
    """A valid answer to an item page (the attention check answered as instructed)."""
    out = {q: str(value) for q in ("interp_understand", "interp_follow", "interp_clear")}
    out.update({q: str(value) for q in ("tlx_mental", "tlx_effort", "tlx_frustration")})
    if "attention check" in html:
        out["interp_understand"] = "1"
    out["verify"] = verify
    if verify == "no":
        out["wrong_step"] = "1"
    return out


def answer_for(html: str) -> dict[str, str]:
    """The answers of whatever page `html` is."""
    if 'name="consent"' in html:
        return {"consent": "yes"}
    if 'name="age"' in html:
        return {"age": "25-34", "education": "master", "ai_use": "weekly"}
    if 'name="interp_understand"' in html:
        return item_answers(html)
    return {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(study_dir: Path, startup: float = 60.0):
    """`tracekd humanstudy serve` as a subprocess on 127.0.0.1 (an ephemeral port); yields
    (base URL, process). Killed (SIGKILL) on exit if still running."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "tracekd", "humanstudy", "serve", str(study_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx2

        deadline = time.monotonic() + startup
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read().decode(errors='replace')}")
            try:
                if httpx2.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
