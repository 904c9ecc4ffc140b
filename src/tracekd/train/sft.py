"""`tracekd train`: supervised fine-tuning on a prepared folder with TRL's SFTTrainer.

- each example is tokenized here, once: the prompt rendered by the chat template with the
  generation prompt, exactly as `tracekd generate` renders it (Qwen3: `enable_thinking=False`;
  no second BOS), then the target trace verbatim (no template can rewrite its `<think>` tags),
  then EOS; the labels mask the prompt, so the loss is on the completion and its EOS only;
- an explicit max length; examples longer than it are counted and reported;
- LoRA with the paper's defaults (r 16, alpha 32, dropout 0.05, all linear layers, lr 2e-4 cosine,
  warm-up 0.1, 3 epochs, effective batch 16), QLoRA for the paper's presets on CUDA, or full
  fine-tuning; batches grouped by length; checkpoints and `--resume`.

Output: OUT/adapter (or OUT/model when full), OUT/checkpoints/, OUT/train_summary.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.generate.prompts import prompt_ids
from tracekd.jsonio import write_json_atomic
from tracekd.models.loading import load_model, load_tokenizer, write_base_record
from tracekd.models.presets import ModelSpec, resolve
from tracekd.prepare import read_sft_records
from tracekd.train.options import TrainOptions


def tokenize_example(rec: dict[str, Any], tok, spec: ModelSpec, completion_only: bool = True) -> dict[str, list[int]]:
    """The training sequence: the prompt exactly as generation renders it (chat template with the
    generation prompt, applied once, no extra BOS), then the target text verbatim, then EOS.
    Labels are -100 on the prompt: the loss is on the completion (and its EOS) only.
    (`completion_only=False` is the paper's defect, loss on every token, kept for comparison.)"""
    prompt = prompt_ids(tok, rec["prompt"], spec)
    completion = tok(rec["completion"][0]["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    labels = ([-100] * len(prompt) if completion_only else prompt) + completion
    return {"input_ids": prompt + completion, "labels": labels}


def sft_dataset(records: list[dict[str, Any]], tok, spec: ModelSpec, completion_only: bool = True):
    from datasets import Dataset

    return Dataset.from_list([tokenize_example(r, tok, spec, completion_only) for r in records])


def sft_config(opts: TrainOptions, out_dir: Path, bf16: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        learning_rate=opts.lr,
        lr_scheduler_type=opts.scheduler,
        warmup_steps=opts.warmup,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        max_length=opts.max_length,
        completion_only_loss=True,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=bf16,
        use_cpu=opts.use_cpu,
        activation_checkpointing=False,
        train_sampling_strategy="group_by_length" if opts.group_by_length else "random",
        save_strategy="steps",
        save_steps=opts.save_steps,
        save_total_limit=2,
        logging_steps=opts.logging_steps,
        report_to=opts.report_to,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=not opts.use_cpu and _cuda(),
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def lora_config(opts: TrainOptions):
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=opts.lora_targets, task_type="CAUSAL_LM")


def last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint that was written to the end; torn ones (a run killed while saving)
    are removed. The Trainer writes trainer_state.json last, after weights, optimizer and RNG."""
    import shutil

    if not ckpt_dir.is_dir():
        return None
    found = sorted((int(p.name.split("-")[1]), p) for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit())
    for step, path in reversed(found):
        try:
            state = json.loads((path / "trainer_state.json").read_text())
            complete = state.get("global_step") == step and (path / "rng_state.pth").is_file()
        except (OSError, ValueError):
            complete = False
        if complete:
            return str(path)
        shutil.rmtree(path, ignore_errors=True)
    return None


def train(data_dir: str | Path, model: str, out_dir: str | Path, opts: TrainOptions | None = None,
          resume: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    """Train with OUT locked (one process per output folder), after removing what a killed run
    left half-written there. Bad input is refused before OUT is made."""
    from tracekd.train.reproducible import locked_output

    resolve(model)
    read_sft_records(Path(data_dir))
    with locked_output(Path(out_dir)):
        return _train(data_dir, model, out_dir, opts, resume, callbacks)


def _train(data_dir: str | Path, model: str, out_dir: str | Path, opts: TrainOptions | None = None,
           resume: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    import datasets
    import torch

    from tracekd.train.reproducible import ReproducibleTrainer

    datasets.disable_progress_bars()

    from tracekd.models.loading import bf16_supported, qlora_available

    opts = opts or TrainOptions()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    spec = resolve(model)
    records = read_sft_records(data_dir)
    tok = load_tokenizer(spec)
    dataset = sft_dataset(records, tok, spec, opts.completion_only_loss)
    lengths = [len(x) for x in dataset["input_ids"]]
    truncated = sum(n > opts.max_length for n in lengths)
    use_bf16 = bf16_supported() if opts.bf16 is None else opts.bf16
    use_qlora = (spec.qlora and qlora_available()) if opts.qlora is None else opts.qlora
    if use_qlora and opts.full:
        raise InputError("QLoRA trains adapters; it cannot be combined with full fine-tuning")
    base = load_model(spec, qlora=use_qlora, bf16=use_bf16)
    args = sft_config(opts, out_dir, use_bf16)
    trainer = ReproducibleTrainer(
        model=base, args=args, train_dataset=dataset, processing_class=tok,
        peft_config=None if opts.full else lora_config(opts), callbacks=callbacks,
    )
    if callbacks:  # a caller with its own progress display: no log lines on stdout
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    checkpoint = last_complete_checkpoint(out_dir / "checkpoints") if resume else None
    if truncated:
        print(f"tracekd train: {truncated} of {len(records)} examples are longer than max_length={opts.max_length} tokens and are truncated")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - start
    final = out_dir / ("model" if opts.full else "adapter")
    summary: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        trainer.save_model(str(final))
        tok.save_pretrained(str(final))
        write_base_record(final, spec, base.config)
        steps = trainer.state.global_step
        world = trainer.args.world_size
        seen = steps * opts.batch_size * opts.grad_accum * world
        mean_len = sum(min(n, opts.max_length) for n in lengths) / len(lengths)
        summary = {
            "model": spec.name,
            "data": str(data_dir),
            "output": str(final),
            "options": opts.model_dump(),
            "examples": len(records),
            "truncated": truncated,
            "max_length": opts.max_length,
            "steps": steps,
            "epochs": trainer.state.epoch,
            "train_loss": result.training_loss,
            "log_history": trainer.state.log_history,
            "resumed_from": checkpoint,
            "world_size": world,
            "device": str(trainer.args.device),
            "dtype": "bfloat16" if use_bf16 else "float32",
            "qlora": bool(use_qlora),
            "full_finetune": opts.full,
            "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "runtime_s": runtime,
            "tokens_per_s": seen * mean_len / runtime if runtime > 0 else None,
            "torch_threads": torch.get_num_threads(),
        }
        write_json_atomic(out_dir / "train_summary.json", json.loads(json.dumps(summary, default=str)))
    return summary
