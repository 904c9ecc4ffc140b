"""Training options (the recipe's knobs: the `train:` block of a config, the flags of `tracekd train`).
Defaults are the paper's LoRA settings."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tracekd.models.loading import Precision, cuda_available
from tracekd.train.sft_args import check_sft_args, parse_items

# the schedules transformers builds from the Trainer's arguments alone; the others need arguments
# of their own (`cosine_with_min_lr`: a minimum; `warmup_stable_decay`: decay steps) or an
# evaluation metric (`reduce_lr_on_plateau`), or are not learning-rate schedules (`greedy`)
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: float = Field(3.0, gt=0, description="Epochs.")
    max_steps: int = Field(-1, description="Stop after N optimiser steps (> 0 overrides epochs).")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate.")
    scheduler: str = Field("cosine", description=f"Learning-rate schedule: {', '.join(SCHEDULERS)}.")
    warmup: float = Field(0.1, ge=0, description="Warm-up (a ratio of the steps when < 1).")
    batch_size: int = Field(4, ge=1, description="Per-device batch size.")
    grad_accum: int = Field(
        4, ge=1, description="Gradient accumulation steps (effective batch = batch size x accumulation x devices: 16)."
    )
    max_length: int = Field(1024, ge=16, description="Max tokens of prompt + completion.")
    full: bool = Field(False, description="Full fine-tuning instead of LoRA.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: str | list[str] = Field(
        "all-linear",
        description="LoRA target modules: all-linear, or module names "
        "(repeatable; a config also takes a regular expression).",
    )
    qlora: bool | None = Field(
        None, description="4-bit QLoRA (default: as the preset says, when CUDA and bitsandbytes are present)."
    )
    precision: Precision = Field(
        "auto",
        description="fp32, bf16 (mixed precision: bf16 autocast) or auto (bf16 where "
        "supported and faster: CUDA, CPUs with AMX / AVX512-BF16).",
    )
    activation_checkpointing: bool | None = Field(
        None,
        description="Recompute activations in the backward pass "
        "(default: on for the paper's presets on CUDA cards below 40 GB).",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed.")
    group_by_length: bool = Field(True, description="Batch examples of similar length.")
    completion_only_loss: bool = Field(
        True, description="Loss on the completion only (off: on the prompt too, the paper's code; for comparison)."
    )
    save_steps: int = Field(50, ge=1, description="Checkpoint every N steps.")
    logging_steps: int = Field(
        10,
        ge=1,
        description="Log the loss every N steps (made a divisor of save_steps, so a resumed run logs the same curve).",
    )
    report_to: str = Field(
        "none",
        description="Trackers the trainer logs to: none, tensorboard, trackio, wandb, ... (comma-separated; "
        "docs/training.md).",
    )
    use_cpu: bool = Field(False, description="Train on CPU (also what `accelerate launch` on CPUs needs).")
    sft: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other field of TRL's SFTConfig, as KEY=VALUE (repeatable; e.g. weight_decay=0.01 or "
        "optim=adafactor); a field one of these options sets is refused (docs/training.md).",
    )

    # values the Trainer would only refuse when training starts (the defaults need no import)
    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {v!r}; choose one of {', '.join(SCHEDULERS)}")
        return v

    @field_validator("report_to")
    @classmethod
    def _report_to(cls, v: str) -> str:
        if v != "none":
            from transformers.integrations.integration_utils import (
                INTEGRATION_TO_CALLBACK,
                get_available_reporting_integrations,
            )

            for name in v.split(","):
                name = name.strip()
                if name != "all" and name not in INTEGRATION_TO_CALLBACK:
                    raise ValueError(
                        f"unknown report_to {name!r}; choose none, all or one of {', '.join(INTEGRATION_TO_CALLBACK)}"
                    )
                if name != "all" and name not in get_available_reporting_integrations():
                    raise ValueError(f"report_to {name!r} needs its package installed (pip install {name})")
        return v

    @field_validator("sft", mode="before")
    @classmethod
    def _sft_items(cls, v: Any) -> Any:
        return parse_items(v) if isinstance(v, list | tuple) and all(isinstance(i, str) for i in v) else v

    @field_validator("sft")
    @classmethod
    def _sft(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if not v:
            return v
        # checked as this machine would train: SFTConfig refuses some values on a CPU (tf32)
        return check_sft_args(v, use_cpu=info.data.get("use_cpu", False) or not cuda_available())

    @field_validator("lora_targets")
    @classmethod
    def _lora_targets(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str):  # 'all-linear' or a regular expression over module names (peft's rule)
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(
                    f"lora_targets is 'all-linear', a regular expression or a list of module names ({e})"
                ) from None
            return v
        if v == ["all-linear"]:  # `--lora-targets all-linear`: the keyword, not a module name
            return "all-linear"
        if not v or not all(t.strip() for t in v) or len(set(v)) != len(v):
            raise ValueError("lora_targets must be a non-empty list of distinct module names")
        return v


def unmatched_lora_target(model: str, targets: str | list[str]) -> str | None:
    """The first LoRA target that names no module of `model` (None when all do, or when the
    model's config is not at hand: a hub id not in the cache, which peft checks when it loads)."""
    if targets == "all-linear":
        return None
    names = _module_names(model)
    if names is None:
        return None
    if isinstance(targets, str):
        return None if any(re.fullmatch(targets, n) for n in names) else targets
    # peft: a name matches a module whose name is it or ends with "." + it
    return next((t for t in targets if not any(n == t or n.endswith("." + t) for n in names)), None)


def _module_names(model: str) -> list[str] | None:
    """Names of the modules of `model`, from its config alone (built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tracekd.models import resolve
    from tracekd.models.loading import model_path

    try:
        config = AutoConfig.from_pretrained(model_path(resolve(model)), local_files_only=True)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
    return [name for name, _ in net.named_modules() if name]
