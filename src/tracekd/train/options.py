"""Training options (the recipe's knobs). Defaults are the paper's LoRA settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    bf16: bool | None = None  # None: where the hardware supports it
    activation_checkpointing: bool | None = None  # None: on for the paper's presets on CUDA cards below 40 GB
    seed: int = 0
    group_by_length: bool = True
    completion_only_loss: bool = True  # False: loss on the prompt too (the paper's code; for comparison)
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(10, ge=1)
    report_to: str = "none"
    use_cpu: bool = False  # force CPU (also what `accelerate launch` on CPUs needs)
