"""`tracekd teach` against a real OpenAI-compatible server: `transformers serve` on 127.0.0.1
with the tiny random model, and a fault-injecting proxy in front of it where a fault or a scripted
answer is needed. Request counts are taken from the server's access log or the proxy, never from
tracekd itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving import FaultProxy, chat_requests
from tracekd.data.config import DatasetConfig
from tracekd.generate.serve import LocalServer, free_port
from tracekd.lock import LOCK_NAME
from tracekd.prepare import prepare
from tracekd.teach.options import POSTHOC_PROMPT, SUMMARY_PROMPT


def _cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "tracekd", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def _prepare(out: Path, size: int, train: int, test: int) -> dict[str, dict]:
    prepare(
        DatasetConfig(name="synthetic-babi", size=size, limit_train=train, limit_test=test), "correct", "paper", 0, out
    )
    recs = {}
    for split in ("train", "test"):
        for line in (out / f"{split}.jsonl").open():
            rec = json.loads(line)
            recs[rec["id"]] = rec
    return recs


def _user(rec: dict) -> str:
    return next(m["content"] for m in rec["prompt"] if m["role"] == "user")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def tiny_folder():
    from tracekd.models.loading import model_path
    from tracekd.models.presets import resolve

    return Path(model_path(resolve("tiny-random")))


@pytest.fixture(scope="module")
def server(tiny_folder, tmp_path_factory):
    srv = LocalServer(tiny_folder, tmp_path_factory.mktemp("serve") / "server.log").start()
    yield srv
    srv.stop()


def _set_message(content: str, reasoning: str | None = None):
    def fn(resp, req):
        msg = resp["choices"][0]["message"]
        msg["content"] = content
        if reasoning is not None:
            msg["reasoning_content"] = reasoning
        return resp

    return fn


def test_teach_rejection_sampling_summary_posthoc(server, tiny_folder, tmp_path):
    """Real server behind a proxy that makes some answers right: S0 right at the first sample (the
    reasoning in `reasoning_content`), S1 at the second (reasoning in <think> tags), the rest never."""
    recs = _prepare(tmp_path / "data", 40, 8, 4)
    ids = sorted(recs)
    s0, s1 = set(ids[:3]), set(ids[3:6])
    by_prompt = {_user(r): i for i, r in recs.items()}

    def rule(n, req):
        body = req["json"]
        if not req["path"].endswith("/chat/completions") or len(body["messages"]) != 1:
            return None
        eid = by_prompt.get(body["messages"][0]["content"])
        gold = recs[eid]["answers"][0] if eid else None
        if eid in s0 and body.get("seed") == 0:
            return {"rewrite": _set_message(gold, reasoning=f"R1 thinks about {eid}.")}
        if eid in s1 and body.get("seed") == 1:
            return {"rewrite": _set_message(f"<think>I read the story of {eid}.</think>\n{gold}")}
        return None

    out = tmp_path / "teach"
    args = [
        "teach",
        "--data",
        tmp_path / "data",
        "--out",
        out,
        "--model",
        tiny_folder,
        "--samples",
        2,
        "--temperature",
        1.0,
        "--max-tokens",
        12,
        "--summary",
        "--posthoc",
        "--api-key-env",
        "TRACEKD_TEST_KEY",
        "--concurrency",
        3,
    ]
    secret = "sk-test-0123456789-never-written"
    with FaultProxy(server.port, rule) as proxy:
        r = _cli(*args, "--base-url", proxy.url, env={"TRACEKD_TEST_KEY": secret})
        assert r.returncode == 0, r.stderr
        first_requests = proxy.chat()
        rows = {x["id"]: x for x in _lines(out / "teacher.jsonl")}
        assert list(rows) == list(_order(tmp_path / "data"))
        for i, row in rows.items():
            want_tried = 1 if i in s0 else 2
            assert (row["accepted"], row["tried"]) == (i in s0 | s1, want_tried), i
        for i in s0:
            assert rows[i]["sample"] == 0 and rows[i]["trace"] == f"R1 thinks about {i}."
            assert rows[i]["answers"] == recs[i]["answers"]
        for i in s1:
            assert rows[i]["sample"] == 1 and rows[i]["trace"] == f"I read the story of {i}."
            assert rows[i]["first"]["correct"] is False
        accepted = s0 | s1
        assert all(isinstance(rows[i]["summary"], str) and isinstance(rows[i]["posthoc"], str) for i in accepted)
        assert all(rows[i]["summary"] is None and rows[i]["posthoc"] is None for i in set(ids) - accepted)
        # requests seen by the proxy: K-bounded trace samples, then one summary and one explanation per kept trace
        assert len(first_requests) == sum(x["tried"] for x in rows.values()) + 2 * len(accepted)
        assert all(
            q["headers"].get("Authorization", q["headers"].get("authorization")) == f"Bearer {secret}"
            for q in first_requests
        )
        traces = [
            q["json"]
            for q in first_requests
            if len(q["json"]["messages"]) == 1 and q["json"]["messages"][0]["content"] in by_prompt
        ]
        assert all(
            q["messages"][0]["role"] == "user" and q["temperature"] == 1.0 and q["max_tokens"] == 12 for q in traces
        )
        posthoc = [q["json"]["messages"] for q in first_requests if len(q["json"]["messages"]) == 4]
        assert len(posthoc) == len(accepted)
        for m in posthoc:
            eid = by_prompt[m[0]["content"]]
            assert [x["role"] for x in m] == ["user", "assistant", "assistant", "user"]
            assert m[1]["content"] == rows[eid]["trace"] and m[2]["content"] == recs[eid]["answers"][0]
            assert m[3]["content"] == POSTHOC_PROMPT
        summaries = [
            q["json"] for q in first_requests if q["json"]["messages"][0]["content"].startswith(SUMMARY_PROMPT[:40])
        ]
        assert len(summaries) == len(accepted)
        assert all(q["temperature"] == 0.0 and q["max_tokens"] == 200 for q in summaries)
        assert {q["messages"][0]["content"] for q in summaries} == {
            SUMMARY_PROMPT.format(trace=rows[i]["trace"]) for i in accepted
        }
        # acceptance per subset, recomputed from the sets above
        summary = json.loads((out / "teach_summary.json").read_text())
        for sub, got in summary["acceptance"]["by_subset"].items():
            members = [i for i in ids if recs[i]["subset"] == sub]
            assert (got["examples"], got["accepted"]) == (len(members), len([i for i in members if i in accepted]))
        assert summary["acceptance"]["overall"]["rate"] == len(accepted) / len(ids)

        # rerun: everything is cached, nothing is asked, the same bytes are written
        # (the folder's lock file holds the pid of the last process that took it, nothing else)
        def outputs():
            return {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_NAME}

        before = outputs()
        r = _cli(*args, "--base-url", proxy.url, env={"TRACEKD_TEST_KEY": secret})
        assert r.returncode == 0, r.stderr
        assert len(proxy.chat()) == len(first_requests)
        assert outputs() == before and (out / LOCK_NAME).exists()
    assert all(secret.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file())


def _order(data: Path) -> list[str]:
    return [
        json.loads(x)["id"] for split in ("train", "test") for x in (data / f"{split}.jsonl").read_text().splitlines()
    ]


def test_faults_are_retried(server, tiny_folder, tmp_path):
    """429 (with Retry-After), 500, a malformed JSON body, a body without choices and a reply slower
    than the timeout: each is retried with backoff, and the run succeeds."""
    _prepare(tmp_path / "data", 20, 2, 1)
    faults = [
        {"status": 429, "body": b'{"error": {"message": "slow down"}}', "headers": {"retry-after": "0"}},
        {"status": 500, "body": b'{"error": {"message": "boom"}}'},
        {"status": 200, "body": b'{"choices": ['},
        {"status": 200, "body": b'{"object": "chat.completion"}'},
        {"sleep": 6},
    ]

    def rule(n, req):
        return faults[n] if n < len(faults) else None

    with FaultProxy(server.port, rule) as proxy:
        r = _cli(
            "teach",
            "--data",
            tmp_path / "data",
            "--out",
            tmp_path / "teach",
            "--model",
            tiny_folder,
            "--base-url",
            proxy.url,
            "--max-tokens",
            8,
            "--concurrency",
            1,
            "--retry-delay",
            0.05,
            "--timeout",
            3,
        )
        assert r.returncode == 0, r.stderr
        assert len(proxy.chat()) == 3 + len(faults)  # 3 examples; the first one took 5 failed tries
    assert len(_lines(tmp_path / "teach" / "responses.jsonl")) == 3


@pytest.mark.parametrize("status, message", [(500, "kept failing (HTTP 500"), (401, "refused the request (HTTP 401")])
def test_persistent_faults_name_the_server(server, tiny_folder, tmp_path, status, message):
    _prepare(tmp_path / "data", 20, 2, 1)
    with FaultProxy(server.port, lambda n, req: {"status": status, "body": b'{"error": {"message": "no"}}'}) as proxy:
        r = _cli(
            "teach",
            "--data",
            tmp_path / "data",
            "--out",
            tmp_path / "teach",
            "--model",
            tiny_folder,
            "--base-url",
            proxy.url,
            "--max-retries",
            2,
            "--retry-delay",
            0.01,
            "--concurrency",
            1,
        )
        tries = len(proxy.chat())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr and proxy.url in r.stderr
    assert tries == (3 if status == 500 else 1)  # 401 is not retried
    assert not (tmp_path / "teach" / "teacher.jsonl").exists()


def test_server_down_is_a_clear_error(tiny_folder, tmp_path):
    _prepare(tmp_path / "data", 20, 2, 1)
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = _cli(
        "teach",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "teach",
        "--model",
        tiny_folder,
        "--base-url",
        url,
        "--max-retries",
        1,
        "--retry-delay",
        0.01,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"the teacher server at {url} cannot be reached (2 tries)" in " ".join(r.stderr.split())
    assert not (tmp_path / "teach" / "teacher.jsonl").exists()


def test_kill_server_mid_run_then_resume(tiny_folder, tmp_path):
    """The server is killed while `tracekd teach` runs: teach stops with the clear error, the
    replies it had are kept; a restarted server is asked only for the rest (its own log says so)."""
    recs = {i: r for i, r in _prepare(tmp_path / "data", 100, 30, 1).items() if r["split"] == "train"}
    n = len(recs)
    port = free_port()
    first = LocalServer(tiny_folder, tmp_path / "server1.log", port).start()
    cache = tmp_path / "teach" / "responses.jsonl"
    args = [
        "teach",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "teach",
        "--model",
        tiny_folder,
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--max-tokens",
        32,
        "--concurrency",
        2,
        "--max-retries",
        2,
        "--retry-delay",
        0.1,
        "--split",
        "train",
    ]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracekd", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if cache.is_file() and len(cache.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        first.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        first.stop()
    assert proc.returncode == 2, err
    assert f"the teacher server at http://127.0.0.1:{port}/v1 cannot be reached" in " ".join(err.split())
    done = _lines(cache)
    assert 3 <= len(done) < n
    kept_bytes = cache.read_bytes()
    with cache.open("a") as f:  # and a torn line, as if teach itself had been killed mid-write
        f.write('{"key": "torn')

    second = LocalServer(tiny_folder, tmp_path / "server2.log", port).start()
    try:
        r = _cli(*args)
        assert r.returncode == 0, r.stderr
        asked = chat_requests(second.log)
    finally:
        second.stop()
    final = _lines(cache)
    assert cache.read_bytes().startswith(kept_bytes)
    assert len(final) == n and len({x["key"] for x in final}) == n
    assert {x["id"] for x in final} == set(recs)
    assert asked == n - len(done)  # nothing finished was asked again
    assert len(_lines(tmp_path / "teach" / "teacher.jsonl")) == n


RUN = """
name: teacher-grid
datasets:
  - {{name: synthetic-babi, size: 60, limit_train: 16, limit_test: 8}}
models: [tiny-random]
conditions: [baseline, correct, correct@teacher_correct, answer_only@teacher_correct,
             teacher, teacher_summary, teacher_posthoc, teacher_swapped]
seeds: [0]
template: tagged
teacher: {{model: {model}, base_url: "{url}", max_tokens: 12, concurrency: 2}}
train: {{max_steps: 2, batch_size: 4, grad_accum: 1, save_steps: 10, lr: 5.0e-3}}
generate: {{max_new_tokens: 16, batch_size: 8}}
"""


def test_run_with_teacher_conditions(server, tiny_folder, tmp_path):
    """`tracekd run` teaches (real server; the proxy makes every other example's answer right),
    then prepares, trains and scores the four teacher conditions and the teacher-correct controls
    beside the rule-based ones, and reports them with the teacher's own row."""
    recs = _prepare(tmp_path / "probe", 60, 16, 8)
    gold = {_user(r): r["answers"][0] for r in recs.values()}
    right = {_user(r) for i, r in enumerate(sorted(recs.values(), key=lambda r: r["id"])) if i % 2 == 0}

    def rule(n, req):
        msgs = req["json"]["messages"] if req["path"].endswith("/chat/completions") else []
        if len(msgs) == 1 and msgs[0]["content"] in right:
            return {
                "rewrite": _set_message(
                    gold[msgs[0]["content"]], reasoning="Reasoning about " + msgs[0]["content"][-30:]
                )
            }
        return None

    cfg = tmp_path / "cfg.yaml"
    with FaultProxy(server.port, rule) as proxy:
        cfg.write_text(RUN.format(model=tiny_folder, url=proxy.url))
        r = _cli("run", cfg, "--out", tmp_path / "run", timeout=1200)
    assert r.returncode == 0, r.stderr + r.stdout
    run = tmp_path / "run"
    kept = {i for i, rec in recs.items() if _user(rec) in right}
    results = json.loads((run / "results.json").read_text())
    groups = {(g["model"], g["condition"]): g for g in results["groups"]}
    n_test = sum(rec["split"] == "test" for rec in recs.values())
    n_kept = sum(recs[i]["split"] == "test" for i in kept)
    assert groups[("tiny-random", "correct")]["n"] == groups[("tiny-random", "baseline")]["n"] == n_test
    for cond in (
        "correct@teacher_correct",
        "answer_only@teacher_correct",
        "teacher",
        "teacher_summary",
        "teacher_posthoc",
        "teacher_swapped",
    ):
        assert groups[("tiny-random", cond)]["n"] == n_kept, cond
        assert groups[("tiny-random", cond)]["lengths"]["target_tokens"] > 0
    for cond in ("teacher", "teacher_swapped"):
        scores = json.loads(
            (run / "cells" / "synthetic-babi" / "tiny-random" / cond / "seed-0" / "scores.json").read_text()
        )
        assert scores["trace_style"] == "freeform"
    correct = json.loads(
        (run / "cells" / "synthetic-babi" / "tiny-random" / "correct" / "seed-0" / "scores.json").read_text()
    )
    assert correct["trace_style"] == "rule"
    teacher_rows = {x["id"]: x for x in _lines(run / "teacher" / "synthetic-babi" / "teacher.jsonl")}
    assert {i for i, x in teacher_rows.items() if x["accepted"]} == kept
    data = run / "data" / "synthetic-babi"
    for rec in _lines(data / "teacher" / "seed-0" / "train.jsonl"):
        assert rec["completion"][0]["content"].startswith(f"<think>{teacher_rows[rec['id']]['trace']}</think>")
    for rec in _lines(data / "teacher_summary" / "seed-0" / "train.jsonl"):
        assert rec["target"]["reasoning"] == teacher_rows[rec["id"]]["summary"]
    for rec in _lines(data / "teacher_swapped" / "seed-0" / "train.jsonl"):
        assert rec["perturbation"]["swapped_with"] != rec["id"]
        assert rec["target"]["reasoning"] == teacher_rows[rec["perturbation"]["swapped_with"]]["trace"]
    # the teacher itself, scored like a model: its first samples on the test split
    own = groups[(f"teacher ({tiny_folder.name})", "baseline")]
    assert own["n"] == n_test
    assert own["rates"]["answer_accuracy"]["mean"] == pytest.approx(n_kept / n_test)
    report = (run / "report.md").read_text()
    assert f"teacher ({tiny_folder.name})" in report and "<summary>Trace length" in report
    assert (run / "plots" / "accuracy_by_trace_length.png").is_file()
    # a rerun does nothing and asks the teacher nothing
    with FaultProxy(server.port, rule, port=int(proxy.url.rsplit(":", 1)[1].split("/")[0])) as proxy:
        cfg.write_text(RUN.format(model=tiny_folder, url=proxy.url))
        r = _cli("run", cfg, "--out", run)
        assert r.returncode == 0, r.stderr
        assert proxy.chat() == []


def test_serve_starts_and_stops_its_own_server(tmp_path):
    """`--serve`: tracekd starts `transformers serve` for a tracekd model, teaches, and stops it.
    With a temperature its samples differ: transformers serve alone keeps the model's greedy
    `do_sample` (every sample of a prompt used to be the same reply)."""
    import re
    import urllib.request

    _prepare(tmp_path / "data", 20, 2, 1)
    r = _cli(
        "teach",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "teach",
        "--model",
        "tiny-random",
        "--serve",
        "--max-tokens",
        8,
        "--temperature",
        1.0,
        "--samples",
        2,
    )
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "teach" / "server.log").read_text()
    assert log.count('"POST /v1/chat/completions HTTP/1.1" 200') == 6  # a random model is never right: 2 samples each
    replies: dict[str, dict[int, str]] = {}
    for x in _lines(tmp_path / "teach" / "responses.jsonl"):
        replies.setdefault(x["id"], {})[x["sample"]] = x["reply"]["content"]
    assert len(replies) == 3 and all(len(set(v.values())) == 2 for v in replies.values())
    port = re.search(r"http://127\.0\.0\.1:(\d+)", log).group(1)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    assert json.loads((tmp_path / "teach" / "teach_summary.json").read_text())["teacher"] == "served:tiny-random"
