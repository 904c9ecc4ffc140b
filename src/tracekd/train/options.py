"""Training options (the recipe's knobs). Defaults are the paper's LoRA settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    lr: float = Field(2e-4, gt=0)
    scheduler: str = "cosine"
    warmup: float = Field(0.1, ge=0)  # a ratio of the steps when < 1
    batch_size: int = Field(4, ge=1)  # per device
    grad_accum: int = Field(4, ge=1)  # effective batch = batch_size * grad_accum * devices (16)
    max_length: int = Field(1024, ge=16)
    full: bool = False  # full fine-tuning instead of LoRA
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: str | list[str] = "all-linear"
    qlora: bool | None = None  # None: as the preset says, when CUDA and bitsandbytes are present
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where supported and faster (CUDA, AMX CPUs)
    activation_checkpointing: bool | None = None  # None: on for the paper's presets on CUDA cards below 40 GB
    seed: int = Field(0, ge=0, le=2**32 - 1)
    group_by_length: bool = True
    completion_only_loss: bool = True  # False: loss on the prompt too (the paper's code; for comparison)
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(10, ge=1)
    report_to: str = "none"
    use_cpu: bool = False  # force CPU (also what `accelerate launch` on CPUs needs)

    # values the Trainer would only refuse when training starts (the defaults need no import)
    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        if v != "cosine":
            from transformers.trainer_utils import SchedulerType

            names = [s.value for s in SchedulerType]
            if v not in names:
                raise ValueError(f"unknown scheduler {v!r}; choose one of {', '.join(names)}")
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
                    raise ValueError(f"unknown report_to {name!r}; choose none, all or one of {', '.join(INTEGRATION_TO_CALLBACK)}")
                if name != "all" and name not in get_available_reporting_integrations():
                    raise ValueError(f"report_to {name!r} needs its package installed (pip install {name})")
        return v

    @field_validator("lora_targets")
    @classmethod
    def _lora_targets(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str):  # 'all-linear' or a regular expression over module names (peft's rule)
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"lora_targets is 'all-linear', a regular expression or a list of module names ({e})") from None
            return v
        if not v or not all(t.strip() for t in v) or len(set(v)) != len(v):
            raise ValueError("lora_targets must be a non-empty list of distinct module names")
        return v
