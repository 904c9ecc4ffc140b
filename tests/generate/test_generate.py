"""Generation: continuous batching == one prompt at a time with transformers' own `generate` (fp32
and bf16), rows leave and join the cache, merged == unmerged, resumable output, precision."""

from __future__ import annotations

import json

import pytest
import torch

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


def _hf_one_at_a_time(gen, prompts, n):
    """The reference: transformers' `generate`, one prompt at a time, greedy, stopping at EOS."""
    import torch

    from tracekd.models.prompts import prompt_ids

    out = {}
    for pid, msgs in prompts:
        ids = torch.tensor([prompt_ids(gen.tok, msgs, gen.spec)])
        seq = gen.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=gen.eos_ids,
            pad_token_id=gen.tok.pad_token_id or gen.tok.eos_token_id,
        )
        out[pid] = gen.tok.decode(seq[0, ids.shape[1] :], skip_special_tokens=True)
    return out


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_continuous_batching_equals_transformers_one_at_a_time(overfit_run, precision):
    """The overfit adapter ends its outputs at EOS after traces of different lengths: rows leave the
    batch at different steps and waiting prompts take their places (12 prompts, 5 slots)."""
    root, _ = overfit_run
    recs = [json.loads(x) for x in (root / "data" / "train.jsonl").open()]
    recs += [json.loads(x) for x in (root / "data" / "test.jsonl").open()][:8]
    prompts = [(r["id"], r["prompt"]) for r in recs]
    gen = HFGenerator(resolve("tiny-random"), root / "run" / "adapter", precision=precision)
    assert gen.model.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    reference = _hf_one_at_a_time(gen, prompts, 80)
    batched = _outputs(gen, prompts, 5, 80)
    assert batched == reference
    lengths = [len(gen.tok(v)["input_ids"]) for v in reference.values()]
    stopped = [n for n in lengths if n < 79]
    assert len(set(stopped)) > 3 and len(stopped) >= len(lengths) - 2  # most stopped at EOS, at different lengths


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_prefix_reuse_equals_prefilling_every_token(overfit_run, precision):
    """Each prompt under three forced continuations, as `tracekd intervene` sends them: the tokens a
    prompt shares with the one before come from that one's cache and only the rest is run; the
    outputs equal those of prefilling every token, and of transformers' `generate`."""
    from tracekd.generate.hf import ContinuousDecoder
    from tracekd.models.prompts import prompt_ids

    root, _ = overfit_run
    recs = [json.loads(x) for x in (root / "data" / "test.jsonl").open()][:6]
    long = json.loads(json.dumps(recs[0]))  # a prompt past the CPU attention kernel's 512-column blocks
    long["id"] += "-long"
    long["prompt"][-1]["content"] = "\n".join([long["prompt"][-1]["content"]] * 12)
    recs.append(long)
    gen = HFGenerator(resolve("tiny-random"), root / "run" / "adapter", precision=precision)
    assert len(prompt_ids(gen.tok, long["prompt"], gen.spec)) > 600
    prompts = [
        prompt_ids(gen.tok, r["prompt"], gen.spec) + gen.forced_ids(forced)
        for r in recs
        for forced in ("", "label: ", "label: x\nevidence:")
    ]
    reused = ContinuousDecoder(gen.model, gen.eos_ids, 4)
    fresh = ContinuousDecoder(gen.model, gen.eos_ids, 4, reuse=False)
    outs = [dict(x for done in d.run(prompts, 40) for x in done) for d in (reused, fresh)]
    assert outs[0] == outs[1]
    assert reused.reused > sum(len(p) for p in prompts) // 2 and fresh.reused == 0
    forced = {f"{r['id']}|{i}": f for r in recs for i, f in enumerate(("", "label: "))}
    todo = [(key, r["prompt"]) for r in recs for key in (f"{r['id']}|0", f"{r['id']}|1")]
    via_generate = dict(x for batch in gen.generate(todo, 40, 4, forced) for x in batch)
    assert [via_generate[k] for k, _ in todo[::2]] == list(_hf_one_at_a_time(gen, todo[::2], 40).values())
    for key, msgs in todo[1::2]:  # the forced ones, whose prompt came from the cache, against transformers
        ids = torch.tensor([prompt_ids(gen.tok, msgs, gen.spec) + gen.forced_ids(forced[key])])
        seq = gen.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=40 - len(gen.forced_ids(forced[key])),
            do_sample=False,
            eos_token_id=gen.eos_ids,
            pad_token_id=gen.tok.pad_token_id or gen.tok.eos_token_id,
        )
        assert via_generate[key] == gen.tok.decode(seq[0, ids.shape[1] :], skip_special_tokens=True), key


def test_rows_leave_and_join_the_cache():
    """The decoder's cache: a finished row leaves, the columns nobody uses are dropped, a new row
    joins right-aligned; the attention mask follows."""
    from tracekd.generate.hf import RowCache

    def filled(rows, length, value):
        c = RowCache()
        c.update(torch.full((rows, 2, length, 4), value), torch.full((rows, 2, length, 4), -value), 0)
        return c

    cache = filled(1, 5, 1.0)
    mask = cache.join(filled(1, 3, 2.0), torch.ones(1, 5, dtype=torch.long))
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    k = cache.layers[0].keys
    assert k.shape == (2, 2, 5, 4) and k[1, :, :2].abs().sum() == 0 and (k[1, :, 2:] == 2).all()
    mask = cache.join(filled(1, 7, 3.0), mask)  # a longer prompt: the others are padded on the left
    assert mask.tolist() == [[0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1], [1] * 7]
    mask = cache.keep([0, 1], mask)  # the long row leaves: two leading columns are nobody's
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]] and cache.layers[0].keys.shape[2] == 5
    assert (cache.layers[0].values[0] == -1).all()
    cache.update(torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 1, 4), 0)  # a decoding step writes one column in place
    assert cache.layers[0].keys.shape[2] == 6 and cache.get_seq_length() == 6


def test_merged_adapter_equals_unmerged(overfit_run):
    root, _ = overfit_run
    recs = [json.loads(x) for x in (root / "data" / "train.jsonl").open()]
    prompts = [(r["id"], r["prompt"]) for r in recs]
    adapter = root / "run" / "adapter"
    fp32 = {"precision": "fp32"}  # in bf16 the merged weights are rounded: outputs may differ
    unmerged = _outputs(HFGenerator(resolve("tiny-random"), adapter, **fp32), prompts, 4, 80)
    merged = _outputs(HFGenerator(resolve("tiny-random"), adapter, merge=True, **fp32), prompts, 4, 80)
    base = _outputs(HFGenerator(resolve("tiny-random"), **fp32), prompts, 4, 80)
    assert merged == unmerged and merged != base


def test_interrupted_generation_resumes(sixteen, tmp_path):
    d, _prompts = sixteen
    out = tmp_path / "preds.jsonl"
    opts = GenerateOptions(max_new_tokens=8, batch_size=4)
    full = generate(d, "tiny-random", tmp_path / "ref.jsonl", opts=opts)
    ref = [json.loads(x) for x in (tmp_path / "ref.jsonl").open()]
    # a run killed after 2 batches, in the middle of writing a line
    kept = "".join(json.dumps(r) + "\n" for r in ref[:8])
    out.write_text(kept + '{"id": "synthetic-temp')
    # with the record of what produced it, which a run writes before its first line
    (tmp_path / "preds.jsonl.provenance.json").write_bytes((tmp_path / "ref.jsonl.provenance.json").read_bytes())
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
    assert gen_run.make_generator(resolve("tiny-random"), None, GenerateOptions()) == "vllm-generator" and picked == [
        "vllm"
    ]
