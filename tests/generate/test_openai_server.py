"""`tracekd generate --backend openai`: a real `transformers serve` with SmolLM2 on 127.0.0.1 (a
recording proxy in front of it) against the local backend on the same items, both greedy in fp32;
the request sent, provenance, resume and errors. Request counts come from the proxy and the
server's own access log, never from tracekd."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving import FaultProxy, chat_requests
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.generate.options import GenerateOptions
from tracekd.generate.run import generate
from tracekd.generate.serve import LocalServer, free_port
from tracekd.prepare import prepare
from tracekd.score.evaluate import evaluate

ITEMS, NEW_TOKENS = 6, 32


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tracekd", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def _outputs(path: Path) -> dict[str, str]:
    return {r["id"]: r["output"] for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("served") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=60, limit_test=ITEMS), "correct", "paper", 0, d)
    return d


@pytest.fixture(scope="module")
def smol_server(tmp_path_factory):
    from tracekd.models.loading import model_path
    from tracekd.models.presets import resolve

    folder = model_path(resolve("smollm2-135m"))
    srv = LocalServer(folder, tmp_path_factory.mktemp("serve") / "server.log").start()
    yield srv, folder
    srv.stop()


def test_served_smollm2_scores_like_the_local_backend(data, smol_server, tmp_path):
    """The served model's outputs equal the local backend's on every item (greedy both, fp32: the
    agreement measured is 6 of 6 identical outputs, so the scores are identical too); each prompt
    went as its chat messages with temperature 0, the seed and the token limit, the key in the
    header; the request is recorded beside the predictions; a resume asks nothing again."""
    server, folder = smol_server
    served = tmp_path / "served.jsonl"
    args = ["generate", "--data", data, "--out", served, "--model", folder, "--backend", "openai"]
    args += ["--max-new-tokens", NEW_TOKENS, "--api-key-env", "TRACEKD_TEST_KEY", "--concurrency", 2]
    with FaultProxy(server.port) as proxy:
        r = _cli(*args, "--base-url", proxy.url, env={"TRACEKD_TEST_KEY": "sk-test"})
        assert r.returncode == 0, r.stderr
        sent = proxy.chat()
    assert f"{ITEMS} generated, 0 already done, {ITEMS} in total" in r.stdout

    prompts = {r["id"]: r["prompt"] for r in map(json.loads, (data / "test.jsonl").read_text().splitlines())}
    assert sorted(json.dumps(q["json"]["messages"]) for q in sent) == sorted(json.dumps(p) for p in prompts.values())
    for q in sent:
        assert q["json"]["temperature"] == 0 and q["json"]["seed"] == 0 and q["json"]["max_tokens"] == NEW_TOKENS
        assert q["json"]["model"] == str(folder)
        assert q["headers"].get("Authorization", q["headers"].get("authorization")) == "Bearer sk-test"
    record = json.loads((tmp_path / "served.jsonl.provenance.json").read_text())
    assert record["request"] == {"temperature": 0.0, "max_tokens": NEW_TOKENS, "seed": 0}
    assert record["model"] == {"name": str(folder), "server": proxy.url}

    local = tmp_path / "local.jsonl"
    generate(
        data, "smollm2-135m", local, opts=GenerateOptions(backend="hf", precision="fp32", max_new_tokens=NEW_TOKENS)
    )
    a, b = _outputs(served), _outputs(local)
    assert set(a) == set(b) == set(prompts)
    assert len(set(b.values())) > 1  # not one output for every prompt
    agree = sum(a[i] == b[i] for i in a)
    assert agree == ITEMS, {i: (a[i], b[i]) for i in a if a[i] != b[i]}
    s_served = evaluate(data, served, tmp_path / "served_scores.json")
    s_local = evaluate(data, local, tmp_path / "local_scores.json")
    assert s_served["answer"] == s_local["answer"] and s_served["steps"] == s_local["steps"]

    # resumed: nothing asked again (the server's own access log); other request parameters are refused
    before = chat_requests(server.log)
    r = _cli(*args, "--base-url", proxy.url)
    assert r.returncode == 0 and f"0 generated, {ITEMS} already done" in r.stdout, r.stderr
    assert chat_requests(server.log) == before
    r = _cli(*args[:-4], "--max-new-tokens", 8, "--base-url", proxy.url)
    assert r.returncode == 2 and "request.max_tokens" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_server_is_one_clear_line(data, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "p.jsonl"
    r = _cli(
        *("generate", "--data", data, "--out", out, "--model", "m", "--backend", "openai", "--base-url", url),
        *("--max-retries", 1, "--retry-delay", 0.01),
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"the model server at {url} cannot be reached (2 tries)" in " ".join(r.stderr.split())
    assert not out.exists() or out.read_text() == ""


def test_server_options_only_with_the_openai_backend(data, tmp_path):
    with pytest.raises(ValueError, match="base_url, concurrency: only for backend openai"):
        GenerateOptions(backend="hf", base_url="http://x/v1", concurrency=2)
    r = _cli("generate", "--data", data, "--out", tmp_path / "p.jsonl", "--base-url", "http://x/v1")
    assert r.returncode == 2 and "base_url: only for backend openai" in " ".join(r.stderr.split())
    with pytest.raises(InputError, match="takes no adapter"):
        generate(data, "m", tmp_path / "p.jsonl", tmp_path, GenerateOptions(backend="openai"))
    from tracekd.intervene.run import intervene

    with pytest.raises(InputError, match="needs backend hf or vllm, not openai"):
        intervene(data, "m", tmp_path / "iv", opts=GenerateOptions(backend="openai"))


RUN = """
name: served-grid
datasets:
  - {{name: synthetic-babi, size: 60, limit_test: {items}}}
models:
  - smollm2-135m
  - {{name: served, model: "{folder}", server: {{base_url: "{url}", concurrency: 2}}}}
conditions: [baseline]
generate: {{max_new_tokens: {tokens}, precision: fp32}}
"""


def test_run_with_a_served_model(smol_server, tmp_path):
    """`tracekd run` with a served model entry beside the same model decoded locally: the served
    cell's requests reach the server, its outputs equal the local cell's (6 of 6), both are scored
    and reported; a served model gets only baseline cells, and `generate.backend: openai` is refused."""
    from tracekd.experiment.config import load_config
    from tracekd.experiment.runner import check_devices, plan

    server, folder = smol_server
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(RUN.format(items=ITEMS, folder=folder, url=server.url, tokens=NEW_TOKENS))
    before = chat_requests(server.log)
    r = _cli("run", cfg, "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert chat_requests(server.log) == before + ITEMS
    cells = tmp_path / "run" / "cells" / "synthetic-babi"
    served, local = (cells / m / "baseline" / "seed-0" / "predictions.jsonl" for m in ("served", "smollm2-135m"))
    assert _outputs(served) == _outputs(local) and len(_outputs(local)) == ITEMS
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "served" in json.dumps(results) and (tmp_path / "run" / "report.html").is_file()

    grid = load_config(cfg, ["conditions=[baseline, correct]", "models.1.model=gpt-x"])  # a name only the server knows
    check_devices(grid, plan(grid))  # resolves no served model
    assert {(c.model.name, c.condition) for c in plan(grid)} == {
        ("smollm2-135m", "baseline"),
        ("smollm2-135m", "correct"),
        ("served", "baseline"),
    }
    for override, message in (
        ("conditions=[correct]", "served model(s) served are not trained"),
        ("generate.backend=openai", "generate.backend: openai is given per model"),
    ):
        with pytest.raises(InputError, match=re.escape(message)):
            load_config(cfg, [override])
