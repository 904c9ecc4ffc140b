"""Generation options (the `generate:` block of a config, the flags of `tracekd generate`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(256, ge=1, description="Max new tokens per output.")
    batch_size: int = Field(16, ge=1, description="Prompts per batch.")
    backend: Literal["auto", "hf", "vllm"] = Field("auto", description="auto: vLLM when installed and a GPU is present, else hf.")
    merge: bool = Field(False, description="Merge the LoRA adapter into the base before decoding.")
    bf16: bool | None = Field(None, description="bf16 (default: where the hardware supports it).")
    limit: int | None = Field(None, ge=1, description="Only the first N test examples.")
