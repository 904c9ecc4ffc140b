"""Generation options."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)
    backend: Literal["auto", "hf", "vllm"] = "auto"  # auto: vLLM when installed and a GPU is present
    merge: bool = False  # merge the LoRA adapter into the base before decoding
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 weights where supported and faster
    limit: int | None = Field(None, ge=1)  # only the first N test examples
