"""`tracekd train`: supervised fine-tuning on a prepared folder with TRL's SFTTrainer.

- each example is tokenized here, once: the prompt rendered by the chat template with the
  generation prompt, exactly as `tracekd generate` renders it (Qwen3: `enable_thinking=False`;
  no second BOS), then the target trace verbatim (no template can rewrite its `<think>` tags),
  then EOS; the labels mask the prompt, so the loss is on the completion and its EOS only;
- an explicit max length; examples longer than it are counted and reported;
- LoRA with the paper's defaults (r 16, alpha 32, dropout 0.05, all linear layers, lr 2e-4 cosine,
  warm-up 0.1, 3 epochs, effective batch 16), QLoRA for the paper's presets on CUDA (not with
  `--full`), or full fine-tuning; batches grouped by length; checkpoints and `--resume`;
  activation checkpointing as asked, by default for the paper's presets on CUDA cards below 40 GB;
- the final save runs on every process (FSDP and ZeRO-3 gather the sharded weights for it); only
  tracekd's own files (tokenizer, base-model record, summary) are written by the main process;
- at the end the trainer and model are dropped and their memory released (CUDA included), so a
  generation stage in the same process finds the card free.

Output: OUT/adapter (or OUT/model when full), OUT/checkpoints/, OUT/train_summary.json.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.jsonio import check_provenance, naming, sha256_file, write_json_atomic
from tracekd.layout import CHECKPOINTS, TRAIN, TRAIN_PROVENANCE, TRAIN_SUMMARY, final_weights
from tracekd.models.loading import (
    cuda_available,
    cuda_memory_gib,
    load_model,
    load_tokenizer,
    release_memory,
    require_device,
    use_bf16,
    use_qlora,
    write_base_record,
)
from tracekd.models.presets import ModelSpec, resolve
from tracekd.models.prompts import prompt_ids
from tracekd.traces.records import read_sft_records
from tracekd.train.options import TrainOptions, unmatched_lora_target
from tracekd.train.sft_args import TRAINER_DEFAULTS, affects_weights


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


def use_activation_checkpointing(spec: ModelSpec, opts: TrainOptions) -> bool:
    """As asked; by default on for presets that ask for it (the paper's) on CUDA cards with less
    memory than their threshold (Qwen3-1.7B at 4 x 2048 tokens: ~30 GB of activations without it)."""
    if opts.activation_checkpointing is not None:
        return opts.activation_checkpointing
    memory = None if opts.use_cpu else cuda_memory_gib()
    return memory is not None and memory < spec.checkpointing_below_gib


def sft_config(opts: TrainOptions, out_dir: Path, bf16: bool, checkpointing: bool = False):
    """tracekd's trainer arguments: its options and decisions, any other SFTConfig field from
    `opts.sft` (which may replace `TRAINER_DEFAULTS` only: `train/sft_args.py`)."""
    from trl import SFTConfig

    return one_device_per_process(
        SFTConfig(
            **(TRAINER_DEFAULTS | {"dataloader_pin_memory": not opts.use_cpu and cuda_available()} | opts.sft),
            output_dir=str(out_dir / CHECKPOINTS),
            num_train_epochs=opts.epochs,
            max_steps=opts.max_steps,
            learning_rate=opts.lr,
            lr_scheduler_type=opts.scheduler,
            warmup_steps=opts.warmup,
            per_device_train_batch_size=opts.batch_size,
            gradient_accumulation_steps=opts.grad_accum,
            max_length=opts.max_length,
            seed=opts.seed,
            data_seed=opts.seed,
            bf16=bf16,
            use_cpu=opts.use_cpu or not cuda_available(),  # also what bf16 autocast on a CPU needs
            **_checkpointing_args(checkpointing),
            train_sampling_strategy="group_by_length" if opts.group_by_length else "random",
            save_strategy="steps",
            save_steps=opts.save_steps,
            # a divisor of save_steps: every checkpoint is a log step, so a resumed run logs the same
            # losses (the trainer's first log after a resume averages only the steps since it)
            logging_strategy="steps",
            logging_steps=math.gcd(opts.logging_steps, opts.save_steps),
            report_to=opts.report_to,
            logging_nan_inf_filter=False,  # a non-finite loss is logged as it is (and stops the run: DivergenceGuard)
        )
    )


def one_device_per_process(args):
    """One process trains on one GPU. Outside `accelerate launch` the Trainer would take every
    visible GPU with `torch.nn.DataParallel`: the batch multiplied by their number (the optimiser
    steps divided by it), a 4-bit model left whole on cuda:0. Here it uses cuda:0 only, says so, and
    says how to use them all (one process per GPU, the batch per process as asked)."""
    if args.n_gpu > 1:
        print(
            f"tracekd train: {args.n_gpu} GPUs visible, one process trains on one ({args.device}); to use them all: "
            f"accelerate launch --multi_gpu --num_processes {args.n_gpu} -m tracekd train ... "
            "(or choose the GPU with CUDA_VISIBLE_DEVICES)"
        )
        args._n_gpu = 1  # what the Trainer itself does for a model-parallel model
    return args


def _checkpointing_args(on: bool) -> dict[str, Any]:
    """Non-reentrant activation checkpointing. transformers 5.24 (the CPU set) calls it
    `activation_checkpointing`; 5.20 (the GPU set, for vLLM) only knows `gradient_checkpointing`."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: on, f"{name}_kwargs": {"use_reentrant": False} if on else None}


def lora_config(opts: TrainOptions):
    from peft import LoraConfig

    return LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=opts.lora_targets,
        task_type="CAUSAL_LM",
    )


def last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint that was written to the end; torn ones (a run killed while saving)
    are removed. The Trainer writes trainer_state.json last, after weights, optimizer and RNG."""
    import shutil

    if not ckpt_dir.is_dir():
        return None
    found = sorted(
        (int(p.name.split("-")[1]), p) for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()
    )
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


def train(
    data_dir: str | Path,
    model: str,
    out_dir: str | Path,
    opts: TrainOptions | None = None,
    resume: bool = False,
    callbacks: list | None = None,
) -> dict[str, Any]:
    """Train with OUT locked (one process per output folder), after removing what a killed run
    left half-written there. Bad input is refused before OUT is made."""
    from tracekd.train.reproducible import locked_output

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    opts = opts or TrainOptions()
    device_policy(resolve(model), opts)  # a missing GPU or bitsandbytes is refused here
    records = read_sft_records(data_dir)  # read once: bad input refused here, the records trained below
    missing = None if opts.full else unmatched_lora_target(model, opts.lora_targets)
    if missing is not None:
        raise InputError(f"model {model!r} has no module matching {missing!r}", key="lora_targets")
    with locked_output(out_dir):
        check_provenance(
            out_dir / TRAIN_PROVENANCE,
            training_provenance(resolve(model), data_dir, opts),
            resume and (any((out_dir / CHECKPOINTS).glob("checkpoint-*")) or (out_dir / TRAIN_SUMMARY).exists()),
            "rerun without --resume, or name another --out, to start fresh",
        )
        if not resume:  # a fresh start: an older run's checkpoints must never be resumed into this one
            shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
            (out_dir / TRAIN_SUMMARY).unlink(missing_ok=True)
        return _train(records, data_dir, model, out_dir, opts, resume, callbacks)


def training_provenance(spec: ModelSpec, data_dir: Path, opts: TrainOptions) -> dict[str, Any]:
    """What the weights depend on: a resume with another model, data or recipe would mix two runs
    (logging, checkpoint cadence and reporting do not change the weights)."""
    options = opts.model_dump(exclude={"save_steps", "logging_steps", "report_to"})
    options["sft"] = {k: v for k, v in opts.sft.items() if affects_weights(k)}
    return {
        "model": {"name": spec.name, "source": spec.source},
        "data": sha256_file(data_dir / TRAIN),
        "options": options,
    }


def check_trainable(data_dir: str | Path, model: str, opts: TrainOptions) -> None:
    """What training would refuse only after loading the model, checked first (`tracekd run` does
    it before any cell runs): LoRA targets that name no module, a max length that cuts every
    completion."""
    missing = None if opts.full else unmatched_lora_target(model, opts.lora_targets)
    if missing is not None:
        raise InputError(f"model {model!r} has no module matching {missing!r}", key="lora_targets")
    spec = resolve(model)
    training_data(read_sft_records(Path(data_dir)), load_tokenizer(spec), spec, opts)


@dataclass(frozen=True)
class DevicePolicy:
    """How the base model is loaded and trained on this machine."""

    bf16: bool  # bf16 autocast (mixed precision)
    weights_bf16: bool  # the base model's weights in bf16
    qlora: bool
    checkpointing: bool


def device_policy(spec: ModelSpec, opts: TrainOptions) -> DevicePolicy:
    """Precision, QLoRA and activation checkpointing: as asked, else by the hardware and the preset.

    bf16 training is mixed precision: the Trainer's bf16 autocast, with the LoRA weights and the
    optimiser state in fp32 (peft keeps adapters in fp32). The frozen base weights are bf16 too
    (autocast would otherwise cast every fp32 weight to bf16 again at each step, about a tenth of a
    CPU step); full fine-tuning on a CPU keeps its trained weights fp32 (on CUDA the model is bf16)."""
    require_device(spec, opts.use_cpu)
    qlora = use_qlora(spec, opts.qlora, opts.full, opts.use_cpu)
    on_cpu = opts.use_cpu or not cuda_available()
    bf16 = use_bf16(opts.precision, on_cpu=on_cpu)
    return DevicePolicy(
        bf16, bf16 and (qlora or not (on_cpu and opts.full)), qlora, use_activation_checkpointing(spec, opts)
    )


@dataclass(frozen=True)
class TrainingData:
    """The tokenized training split, with each sequence's length."""

    records: list[dict[str, Any]]
    dataset: Any  # datasets.Dataset of input_ids / labels
    lengths: list[int]
    truncated: int  # sequences longer than max_length


def training_data(records: list[dict[str, Any]], tok, spec: ModelSpec, opts: TrainOptions) -> TrainingData:
    dataset = sft_dataset(records, tok, spec, opts.completion_only_loss)
    lengths = [len(x) for x in dataset["input_ids"]]
    # a label at position i is predicted from position i - 1: it needs 1 <= i < max_length
    if not any(any(t != -100 for t in labels[1 : opts.max_length]) for labels in dataset["labels"]):
        raise InputError(
            f"{opts.max_length} tokens cut every example before its completion "
            f"(the shortest has {min(lengths)} tokens): nothing to learn; raise it",
            key="max_length",
        )
    return TrainingData(records, dataset, lengths, sum(n > opts.max_length for n in lengths))


def make_trainer(
    spec: ModelSpec,
    tok,
    data: TrainingData,
    opts: TrainOptions,
    policy: DevicePolicy,
    out_dir: Path,
    callbacks: list | None,
):
    """The base model loaded as the policy says, under the reproducible SFT trainer."""
    from tracekd.train.reproducible import ReproducibleTrainer

    base = load_model(spec, qlora=policy.qlora, bf16=policy.weights_bf16)
    trainer = ReproducibleTrainer(
        model=base,
        args=sft_config(opts, out_dir, policy.bf16, policy.checkpointing),
        train_dataset=data.dataset,
        processing_class=tok,
        peft_config=None if opts.full else lora_config(opts),
        callbacks=[*(callbacks or []), divergence_guard()],
    )
    if policy.bf16:
        keep_adapter_inputs_bf16(trainer.model)
    if callbacks:  # a caller with its own progress display: no log lines on stdout
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def divergence_guard():
    """A callback that stops training at the first logged non-finite loss or gradient norm, before
    that step's checkpoint is saved (every save step is a log step: `sft_config`)."""
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if isinstance(value, int | float) and not math.isfinite(value):
                    raise InputError(
                        f"training diverged at step {state.global_step}: {key} {value} "
                        f"(learning rate {args.learning_rate:g}); no adapter was saved - lower the "
                        "learning rate and train again without --resume",
                        Path(args.output_dir).parent,
                    )

    return DivergenceGuard()


def keep_adapter_inputs_bf16(model) -> None:
    """Under bf16 autocast, peft would cast each LoRA layer's input to the adapter's fp32, run the
    dropout in fp32, and autocast would cast it back to bf16 for the adapter's product: two copies
    and an fp32 dropout per layer, about a fifth of a CPU step. The input stays bf16 instead (peft's
    `cast_input_dtype_enabled`); the products are bf16 either way."""
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False


def save_final(trainer, tok, spec: ModelSpec, final: Path) -> bool:
    """The adapter (or model), saved by every process (FSDP / ZeRO-3 gather the sharded weights
    here); the tokenizer and the base-model record by the main process. True there. Under FSDP
    the weights are gathered whole on rank 0 whatever state dict type the accelerate config gives
    the checkpoints (with a sharded one the Trainer's save would write no weights)."""
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(final))
    if not trainer.is_world_process_zero():
        return False
    tok.save_pretrained(str(final))
    write_base_record(final, spec)
    return True


def _train(
    records: list, data_dir: Path, model: str, out_dir: Path, opts: TrainOptions, resume: bool, callbacks
) -> dict:
    import datasets

    datasets.disable_progress_bars()
    spec = resolve(model)
    tok = load_tokenizer(spec)
    data = training_data(records, tok, spec, opts)
    policy = device_policy(spec, opts)
    trainer = make_trainer(spec, tok, data, opts, policy, out_dir, callbacks)
    checkpoint = last_complete_checkpoint(out_dir / CHECKPOINTS) if resume else None
    if data.truncated:
        print(
            f"tracekd train: {data.truncated} of {len(data.records)} examples are longer than "
            f"max_length={opts.max_length} tokens and are truncated"
        )
    start = time.perf_counter()
    if checkpoint is not None and _finished(checkpoint):
        result = _load_finished(trainer, checkpoint)
    else:
        with saving_named(out_dir / CHECKPOINTS):
            result = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - start
    final = final_weights(out_dir, opts.full)
    summary: dict[str, Any] = {}
    if save_final(trainer, tok, spec, final):
        run = {"result": result, "runtime": runtime, "checkpoint": checkpoint}
        summary = _summary(trainer, spec, opts, data_dir, final, data, policy, run)
        write_json_atomic(out_dir / TRAIN_SUMMARY, json.loads(json.dumps(summary, default=str)))
    del trainer
    release_memory()
    return summary


@contextmanager
def saving_named(folder: Path) -> Iterator[None]:
    """A checkpoint that cannot be written (a full disk) is one line naming its folder: torch's
    writer raises a RuntimeError with its C++ trace, others an OSError without a file name."""
    try:
        with naming(folder):
            yield
    except RuntimeError as e:
        text = str(e).strip()
        if "PytorchStreamWriter" not in text and "write failed" not in text:
            raise
        cause = text[text.find("PytorchStreamWriter") :] if "PytorchStreamWriter" in text else text
        raise InputError(
            f"could not write a checkpoint ({cause.splitlines()[0]}); is the disk full? "
            "the complete checkpoints are kept: free space and resume with --resume",
            folder,
        ) from None


def _finished(checkpoint: str) -> bool:
    """The checkpoint of the last step (a run killed before its summary was written)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return state["global_step"] >= state["max_steps"] > 0


def _load_finished(trainer, checkpoint: str):
    """The final checkpoint's weights and state, without training: the Trainer's resume would take
    one more optimiser step when the last step is not the end of an epoch."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    return TrainOutput(trainer.state.global_step, None, {})  # type: ignore[arg-type]  # no training ran: no loss


def batch_record(args) -> dict[str, Any]:
    """The batch as it ran: per optimiser step and process (the per-device batch on each of the
    process's devices), the effective batch (x accumulation x processes) and the devices."""
    per_step = args.train_batch_size
    return {
        "batch_size_per_step": per_step,
        "effective_batch_size": per_step * args.gradient_accumulation_steps * args.world_size,
        "devices_per_process": max(1, args.n_gpu),
        "cuda_devices_visible": _cuda_device_count() if cuda_available() else 0,
    }


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count()


def _summary(
    trainer,
    spec: ModelSpec,
    opts: TrainOptions,
    data_dir: Path,
    final: Path,
    data: TrainingData,
    policy: DevicePolicy,
    run: dict[str, Any],
) -> dict[str, Any]:
    import torch

    steps = trainer.state.global_step
    args = trainer.args
    world = args.world_size
    batch = batch_record(args)
    seen = steps * batch["effective_batch_size"]
    lengths, runtime = data.lengths, run["runtime"]
    mean_len = sum(min(n, opts.max_length) for n in lengths) / len(lengths)
    return {
        "model": spec.name,
        "data": str(data_dir),
        "output": str(final),
        "options": opts.model_dump(),
        "examples": len(data.records),
        "truncated": data.truncated,
        "max_length": opts.max_length,
        "steps": steps,
        "epochs": trainer.state.epoch,
        "train_loss": run["result"].training_loss,
        "log_history": trainer.state.log_history,
        "resumed_from": run["checkpoint"],
        "world_size": world,
        **batch,
        "device": str(args.device),
        "precision": "bf16" if policy.bf16 else "fp32",  # bf16: autocast (mixed precision)
        "base_weights_dtype": "bfloat16" if policy.weights_bf16 else "float32",
        "qlora": bool(policy.qlora),
        "full_finetune": opts.full,
        "activation_checkpointing": policy.checkpointing,
        "chat_template_kwargs": spec.chat_template_kwargs,  # e.g. the fixed date of Llama 3's template
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        # under QLoRA TRL casts them to bf16 whatever the precision (the adapter is saved bf16)
        "trainable_dtype": sorted({str(p.dtype) for p in trainer.model.parameters() if p.requires_grad}),
        "runtime_s": runtime,
        "tokens_per_s": seen * mean_len / runtime if runtime > 0 else None,
        "torch_threads": torch.get_num_threads(),
    }
