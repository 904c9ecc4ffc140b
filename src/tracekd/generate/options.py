"""Generation options (the `generate:` block of a config, the flags of `tracekd generate`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tracekd.models.loading import Precision


class GenerateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(256, ge=1, description="Max new tokens per output.")
    batch_size: int = Field(16, ge=1, description="Prompts per batch.")
    backend: Literal["auto", "hf", "vllm"] = Field(
        "auto", description="auto: vLLM when installed and a GPU is present, else hf."
    )
    merge: bool = Field(False, description="Merge the LoRA adapter into the base before decoding.")
    precision: Precision = Field(
        "auto",
        description="fp32 or bf16 weights, or auto (bf16 where supported and faster: "
        "CUDA, CPUs with AMX / AVX512-BF16).",
    )
    limit: int | None = Field(None, ge=1, description="Only the first N test examples.")
