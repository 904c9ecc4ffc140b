"""Training: the loss is on the completion only, the chat template is applied once, the prompt
is the one generation uses; truncation is counted; checkpoints resume; bad input is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.models import resolve
from tracekd.models.loading import load_model, load_tokenizer
from tracekd.models.prompts import prompt_ids
from tracekd.prepare import prepare
from tracekd.traces.records import read_sft_records
from tracekd.train.options import TrainOptions
from tracekd.train.sft import lora_config, sft_config, sft_dataset, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train") / "data"
    prepare(DatasetConfig(name="synthetic-temporal", size=30), "correct", "paper", 0, d)
    return d


def _batch(data, model_name, tmp_path):
    from trl import SFTTrainer

    spec = resolve(model_name)
    records = read_sft_records(data)[:3]
    tok = load_tokenizer(spec)
    trainer = SFTTrainer(
        model=load_model(spec),
        args=sft_config(TrainOptions(), tmp_path, bf16=False),
        train_dataset=sft_dataset(records, tok, spec),
        processing_class=tok,
        peft_config=lora_config(TrainOptions()),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    return spec, tok, records, batch


@pytest.mark.parametrize("model_name", ["tiny-random", "tiny-random-qwen3"])
def test_loss_is_on_the_completion_only(data, tmp_path, model_name):
    spec, tok, records, batch = _batch(data, model_name, tmp_path)
    for row, rec in enumerate(records):
        ids = batch["input_ids"][row].tolist()
        labels = batch["labels"][row].tolist()
        mask = batch["attention_mask"][row].tolist()
        n = sum(mask)
        ids, labels = ids[:n], labels[:n]  # drop right padding (its labels are masked too)
        assert all(x == -100 for x in batch["labels"][row].tolist()[n:])
        first = next(i for i, x in enumerate(labels) if x != -100)
        # everything before the completion is masked, and it is exactly the generation prompt
        assert ids[:first] == prompt_ids(tok, rec["prompt"], spec)
        trained = [x for x in labels[first:] if x != -100]
        assert trained == ids[first:]
        text = tok.decode(trained)
        assert text == rec["completion"][0]["content"] + "<|im_end|>"
        assert trained[-1] == tok.eos_token_id  # EOS appended and trained
        # the chat template was applied once: one BOS at the start, not two
        assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
        if model_name == "tiny-random-qwen3":
            # thinking switched off: the empty think block is prompt, the trace goes in verbatim
            assert tok.decode(ids[:first]).endswith("<think>\n\n</think>\n\n")
            assert not text.startswith("<think>\n\n</think>")


def test_truncation_is_counted_and_checkpoints_resume(data, tmp_path):
    out = tmp_path / "run"
    opts = TrainOptions(max_steps=4, batch_size=2, grad_accum=1, save_steps=2, max_length=200, lr=1e-3)
    s = train(data, "tiny-random", out, opts)
    assert (
        s["steps"] == 4
        and s["truncated"] > 0
        and s["examples"] == 24
        and (out / "adapter" / "adapter_config.json").is_file()
    )
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    saved = json.loads((out / "train_summary.json").read_text())
    assert saved["truncated"] == s["truncated"] and saved["options"]["lora_r"] == 16
    # a run killed after checkpoint-2 resumes from it and continues at step 2 (a longer run, another
    # recipe, is refused: tests/test_resume_provenance.py)
    shutil.rmtree(out / "checkpoints" / "checkpoint-4")
    (out / "train_summary.json").unlink()
    s2 = train(data, "tiny-random", out, opts, resume=True)
    assert s2["steps"] == 4 and s2["resumed_from"].endswith("checkpoint-2")


def test_torn_checkpoints_are_skipped(tmp_path):
    from tracekd.train.sft import last_complete_checkpoint

    ck = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        d = ck / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "rng_state.pth").write_bytes(b"x")
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        else:
            (d / "trainer_state.json").write_text('{"global_st')  # killed while writing
    assert last_complete_checkpoint(ck) == str(ck / "checkpoint-4")
    assert not (ck / "checkpoint-6").exists()
    assert last_complete_checkpoint(tmp_path / "none") is None


def test_paper_defaults():
    o = TrainOptions()
    assert (o.lora_r, o.lora_alpha, o.lora_dropout, o.lora_targets, o.lr, o.scheduler, o.warmup, o.epochs) == (
        16,
        32,
        0.05,
        "all-linear",
        2e-4,
        "cosine",
        0.1,
        3.0,
    )
    assert o.batch_size * o.grad_accum == 16


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True)


def test_bad_input(tmp_path, data, overfit_run):
    r = _cli("train", "--data", data, "--model", "gpt-17", "--out", tmp_path / "o")
    assert r.returncode == 2 and "unknown model 'gpt-17'" in r.stderr
    r = _cli("train", "--data", tmp_path, "--model", "tiny-random", "--out", tmp_path / "o")
    assert r.returncode == 2 and "no train.jsonl" in r.stderr
    r = _cli("train", "--data", data, "--model", "tiny-random", "--out", tmp_path / "o", "--lr", "-1")
    assert r.returncode == 2 and "--lr: Input should be greater than 0" in r.stderr
    root, _ = overfit_run
    r = _cli(
        "generate",
        "--data",
        root / "data",
        "--model",
        "tiny-random-qwen3",
        "--adapter",
        root / "run" / "adapter",
        "--out",
        tmp_path / "p.jsonl",
    )
    assert r.returncode == 2 and "adapter was trained on base model 'tiny-random'" in r.stderr
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("model_name", ["tiny-random", "tiny-random-qwen3"])
def test_cpu_loss_scores_label_positions_only_and_equals_trl(data, tmp_path, model_name):
    """On a CPU, ReproducibleTrainer projects only the label positions through the LM head; its
    loss and gradients are TRL's (which projects every position there), with and without
    `num_items_in_batch`, and it logs the same token accuracy."""
    import torch
    from trl import SFTTrainer

    from tracekd.train.reproducible import ReproducibleTrainer

    spec = resolve(model_name)
    records = read_sft_records(data)[:4]
    tok = load_tokenizer(spec)
    opts = TrainOptions(lora_dropout=0.0)
    trainer = ReproducibleTrainer(
        model=load_model(spec),
        args=sft_config(opts, tmp_path, bf16=False),
        train_dataset=sft_dataset(records, tok, spec),
        processing_class=tok,
        peft_config=lora_config(opts),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert labelled < batch["labels"][:, 1:].numel() / 2  # most positions are prompt: worth skipping
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    for items in (None, torch.tensor(3 * labelled)):
        results = []
        for compute in (ReproducibleTrainer.compute_loss, SFTTrainer.compute_loss):
            trainer.model.zero_grad()
            trainer._metrics["train"].clear()
            loss = compute(trainer, trainer.model, dict(batch), num_items_in_batch=items)
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in params], dict(trainer._metrics["train"])))
        (ours, ours_grads, ours_logged), (trl, trl_grads, trl_logged) = results
        assert torch.allclose(ours, trl, rtol=1e-5, atol=1e-6)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(ours_grads, trl_grads, strict=True))
        assert ours_logged["mean_token_accuracy"] == pytest.approx(trl_logged["mean_token_accuracy"])
        assert ours_logged["entropy"] == pytest.approx(trl_logged["entropy"], rel=1e-4)
    # tokens seen, counted as TRL counts them (both calls of each pass above added the batch)
    assert trainer._metrics["train"]["num_tokens"] == [4 * int(batch["attention_mask"].sum())]


def test_train_masks_the_prompt_by_default(tmp_path):
    """Bug: TrainOptions defaulted to loss on the prompt. Masking was tested only through
    sft_dataset's own default; here the batches train() feeds the model are inspected."""
    from transformers import TrainerCallback

    from tracekd.data.config import DatasetConfig
    from tracekd.models import resolve
    from tracekd.models.loading import load_tokenizer
    from tracekd.prepare import prepare
    from tracekd.traces.records import read_sft_records
    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    class FirstBatch(TrainerCallback):
        batch = None

        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            FirstBatch.batch = next(iter(train_dataloader))

    prepare(DatasetConfig(name="synthetic-babi", size=10, limit_train=4), "correct", "tagged", 0, tmp_path / "data")
    opts = TrainOptions(max_steps=1, batch_size=4, grad_accum=1, warmup=0, save_steps=1000)
    train(tmp_path / "data", "tiny-random", tmp_path / "run", opts, callbacks=[FirstBatch()])
    tok = load_tokenizer(resolve("tiny-random"))
    completions = {r["completion"][0]["content"] + tok.eos_token for r in read_sft_records(tmp_path / "data")}
    batch = FirstBatch.batch
    assert batch["labels"].shape[0] == 4
    for labels, mask in zip(batch["labels"].tolist(), batch["attention_mask"].tolist()):
        labels = labels[: sum(mask)]
        assert labels[0] == -100  # the prompt is masked ...
        trained = [t for t in labels if t != -100]
        assert tok.decode(trained) in completions  # ... and exactly the completion and EOS are trained


def test_length_batches_are_random_batches_of_similar_length():
    """group_by_length: every batch holds neighbours in length (little padding), the batches come in
    random order (no long-to-short run through a small set), one order per (seed, epoch)."""
    import random

    from tracekd.train.reproducible import EpochSampler

    rng = random.Random(0)
    lengths = [rng.randint(80, 200) for _ in range(203)]
    sampler = EpochSampler(len(lengths), 7, lengths, 4)
    order = sampler.order(0)
    assert sorted(order) == list(range(203)) and order == EpochSampler(203, 7, lengths, 4).order(0)
    assert order != sampler.order(1)
    batches = [order[k : k + 4] for k in range(0, 203, 4)]
    ranked = sorted(lengths)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded - sum(lengths) < 0.03 * sum(lengths)  # random batches of 4 here waste about 20 %
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:-1]]
    assert sum(spans) <= ranked[-1] - ranked[0]  # full batches are consecutive runs of the length ranking
    again = sampler.order(1)
    assert {frozenset(b) for b in batches[:-1]} != {frozenset(again[k : k + 4]) for k in range(0, 200, 4)}
    longest = [max(lengths[i] for i in b) for b in batches[:-1]]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
    assert len(batches[-1]) == 3  # the leftovers last
