"""A resume checks what produced the output it continues (model, adapter, data, options) and
refuses one that would mix two producers; no command writes over one of its inputs."""

from __future__ import annotations

import json

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.generate.options import GenerateOptions
from tracekd.generate.run import generate
from tracekd.jsonio import check_provenance
from tracekd.prepare import prepare
from tracekd.score.evaluate import evaluate
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train

OPTS = GenerateOptions(max_new_tokens=4, batch_size=4, limit=4, backend="hf")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("prov") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=30), "correct", "tagged", 0, d)
    return d


def test_the_helper_writes_then_compares(tmp_path):
    rec = tmp_path / "out.provenance.json"
    check_provenance(rec, {"model": "a", "options": {"lr": 1}}, False, "start fresh")
    check_provenance(rec, {"model": "a", "options": {"lr": 1}}, True, "start fresh")
    with pytest.raises(InputError, match=r"options\.lr: 1 \(now 2\); start fresh"):
        check_provenance(rec, {"model": "a", "options": {"lr": 2}}, True, "start fresh")
    with pytest.raises(InputError, match="is missing; start fresh"):
        check_provenance(tmp_path / "none.json", {"model": "a"}, True, "start fresh")


def test_generate_refuses_predictions_of_another_model(tmp_path, data):
    out = tmp_path / "p.jsonl"
    generate(data, "tiny-random", out, None, OPTS)
    assert generate(data, "tiny-random", out, None, OPTS)["already_done"] == 4  # same producer: resumes
    before = out.read_bytes()
    with pytest.raises(InputError, match=r"model.name: 'tiny-random' \(now 'tiny-random-qwen3'\).*another --out"):
        generate(data, "tiny-random-qwen3", out, None, OPTS)
    with pytest.raises(InputError, match="max_new_tokens"):
        generate(data, "tiny-random", out, None, OPTS.model_copy(update={"max_new_tokens": 5}))
    assert out.read_bytes() == before


def test_generate_refuses_another_adapter(tmp_path, data):
    opts = TrainOptions(max_steps=2, batch_size=2, grad_accum=1, save_steps=100, warmup=0)
    train(data, "tiny-random", tmp_path / "a", opts)
    train(data, "tiny-random", tmp_path / "b", opts.model_copy(update={"lr": 1e-2}))
    out = tmp_path / "p.jsonl"
    generate(data, "tiny-random", out, tmp_path / "a" / "adapter", OPTS)
    with pytest.raises(InputError, match="adapter"):
        generate(data, "tiny-random", out, tmp_path / "b" / "adapter", OPTS)


def test_train_resume_with_other_options_is_refused(tmp_path, data):
    opts = TrainOptions(max_steps=4, batch_size=2, grad_accum=1, save_steps=2, warmup=0)
    out = tmp_path / "out"
    train(data, "tiny-random", out, opts)
    adapter = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(InputError, match=r"options\.lr.*options\.max_steps.*without --resume"):
        train(data, "tiny-random", out, opts.model_copy(update={"lr": 0.5, "max_steps": 3}), resume=True)
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    # the same recipe resumes (nothing left to train), another one without --resume starts fresh
    assert train(data, "tiny-random", out, opts, resume=True)["steps"] == 4
    assert train(data, "tiny-random", out, opts.model_copy(update={"max_steps": 3}))["steps"] == 3
    # ... and leaves none of the older run's checkpoints to resume from
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]


def test_rescore_refuses_to_write_over_a_file_it_reads(tmp_path):
    import subprocess
    import sys

    f = tmp_path / "outputs.jsonl"
    f.write_text("{}\n")
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "rescore", str(f), "--json", str(f)], capture_output=True, text=True
    )
    assert r.returncode == 2 and f"{f}: is also an input" in r.stderr
    assert f.read_text() == "{}\n"


def test_no_output_is_an_input(tmp_path, data):
    preds = tmp_path / "p.jsonl"
    generate(data, "tiny-random", preds, None, OPTS.model_copy(update={"limit": None}))
    test_file = data / "test.jsonl"
    before = test_file.read_bytes()
    with pytest.raises(InputError, match="is also an input"):
        generate(data, "tiny-random", test_file, None, OPTS)
    with pytest.raises(InputError, match="is also an input"):
        evaluate(data, preds, preds)
    with pytest.raises(InputError, match="is also an input"):
        evaluate(data, preds, tmp_path / "s.json", test_file)
    link = tmp_path / "link.jsonl"
    link.symlink_to(preds)
    with pytest.raises(InputError, match="is also an input"):
        evaluate(data, preds, tmp_path / "s.json", link)
    with pytest.raises(InputError, match="two outputs"):
        evaluate(data, preds, tmp_path / "s.json", tmp_path / "s.json")
    assert test_file.read_bytes() == before
    evaluate(data, preds, tmp_path / "s.json")


def test_prepare_refuses_to_write_over_its_source(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    source = out / "test.jsonl"  # an MS MARCO file named like the output
    record = {"query_id": 1, "query": "what is x", "query_type": "DESCRIPTION", "answers": ["x is y"]}
    record["passages"] = {"is_selected": [0, 1], "passage_text": ["a", "x is y"]}
    source.write_text(json.dumps(record) + "\n")
    before = source.read_bytes()
    with pytest.raises(InputError, match="is also an input"):
        prepare(DatasetConfig(name="msmarco", source=str(source), test_fraction=0.5), "correct", "tagged", 0, out)
    assert source.read_bytes() == before


def test_generate_refuses_another_model_at_the_same_path(tmp_path, data):
    """A full fine-tune's output is a model folder: a resume after other weights were written to
    the same path is another producer (the path alone was recorded before)."""
    import shutil

    from safetensors.torch import load_file, save_file

    from tracekd.models import tiny
    from tracekd.models.presets import cache_dir

    model = tmp_path / "model"
    shutil.copytree(tiny.local_folder("llama", cache_dir()), model)
    out = tmp_path / "p.jsonl"
    generate(data, str(model), out, None, OPTS)
    assert generate(data, str(model), out, None, OPTS)["already_done"] == 4  # same weights: resumes
    weights = next(model.glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(InputError, match=r"model\.weights"):
        generate(data, str(model), out, None, OPTS)
