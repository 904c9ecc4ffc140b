"""Generation: batched == one at a time, merged == unmerged, resumable output."""

from __future__ import annotations

import json

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.generate.hf import HFGenerator
from tracekd.generate.options import GenerateOptions
from tracekd.generate.run import generate
from tracekd.models import resolve
from tracekd.prepare import prepare


@pytest.fixture(scope="module")
def sixteen(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen") / "data"
    prepare(DatasetConfig(name="synthetic-temporal", size=80), "correct", "paper", 0, d)
    recs = [json.loads(x) for x in (d / "test.jsonl").open()][:16]
    return d, [(r["id"], r["prompt"]) for r in recs]


def _outputs(gen, prompts, batch_size, n=24):
    return dict(x for batch in gen.generate(prompts, n, batch_size) for x in batch)


def test_batched_equals_one_at_a_time(sixteen):
    _, prompts = sixteen
    gen = HFGenerator(resolve("tiny-random"))
    lengths = {len(gen.tok.apply_chat_template(m, add_generation_prompt=True)["input_ids"]) for _, m in prompts}
    assert len(lengths) > 8  # prompts of different lengths
    batched = _outputs(gen, prompts, 16)
    single = _outputs(gen, prompts, 1)
    assert batched == single
    assert len(set(batched.values())) > 4  # non-trivial outputs


def test_merged_adapter_equals_unmerged(overfit_run):
    root, _ = overfit_run
    recs = [json.loads(x) for x in (root / "data" / "train.jsonl").open()]
    prompts = [(r["id"], r["prompt"]) for r in recs]
    adapter = root / "run" / "adapter"
    unmerged = _outputs(HFGenerator(resolve("tiny-random"), adapter), prompts, 4, 80)
    merged = _outputs(HFGenerator(resolve("tiny-random"), adapter, merge=True), prompts, 4, 80)
    base = _outputs(HFGenerator(resolve("tiny-random")), prompts, 4, 80)
    assert merged == unmerged and merged != base


def test_interrupted_generation_resumes(sixteen, tmp_path):
    d, prompts = sixteen
    out = tmp_path / "preds.jsonl"
    opts = GenerateOptions(max_new_tokens=8, batch_size=4)
    full = generate(d, "tiny-random", tmp_path / "ref.jsonl", opts=opts)
    ref = [json.loads(x) for x in (tmp_path / "ref.jsonl").open()]
    # a run killed after 2 batches, in the middle of writing a line
    kept = "".join(json.dumps(r) + "\n" for r in ref[:8])
    out.write_text(kept + '{"id": "synthetic-temp')
    s = generate(d, "tiny-random", out, opts=opts)
    assert s["already_done"] == 8 and s["generated"] == full["total"] - 8
    rows = [json.loads(x) for x in out.open()]
    assert out.read_text().startswith(kept)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in ref)
    assert {r["id"]: r["output"] for r in rows} == {r["id"]: r["output"] for r in ref}
    assert generate(d, "tiny-random", out, opts=opts)["generated"] == 0  # finished work is not redone


def test_backend_selection_and_vllm_refusal(sixteen, tmp_path, monkeypatch):
    from tracekd.errors import InputError
    from tracekd.generate import run as gen_run
    from tracekd.generate import vllm_backend

    d, _ = sixteen
    monkeypatch.setattr(vllm_backend, "available", lambda: False)
    with pytest.raises(InputError, match="vLLM backend needs"):
        generate(d, "tiny-random", tmp_path / "p.jsonl", opts=GenerateOptions(backend="vllm"))
    # auto picks vLLM only when it is installed and a GPU is present
    picked = []
    monkeypatch.setattr(vllm_backend, "available", lambda: True)
    monkeypatch.setattr(vllm_backend, "VLLMGenerator", lambda *a: picked.append("vllm") or "vllm-generator")
    assert gen_run.make_generator(resolve("tiny-random"), None, GenerateOptions()) == "vllm-generator" and picked == ["vllm"]
