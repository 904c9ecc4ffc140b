"""Trace length in tokens (the student's tokenizer): of the training targets a condition teaches
(`train.jsonl` completions, trace and answer) and of the outputs the trained model wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def mean_tokens(tok, texts: list[str]) -> float | None:
    if not texts:
        return None
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) / len(texts)


def trace_lengths(data_dir: str | Path, predictions: str | Path, model: str, trained: bool = True) -> dict[str, Any]:
    """Mean tokens per training target (None for an untrained baseline) and per output."""
    from tracekd.jsonio import read_jsonl
    from tracekd.models.loading import load_tokenizer
    from tracekd.models.presets import resolve
    from tracekd.traces.records import read_sft_records

    tok = load_tokenizer(resolve(model))
    targets = [r["completion"][0]["content"] for r in read_sft_records(Path(data_dir), "train")] if trained else []
    outputs = [rec["output"] for _, rec in read_jsonl(predictions)]
    return {
        "target_tokens": mean_tokens(tok, targets),
        "output_tokens": mean_tokens(tok, outputs),
        "targets": len(targets),
        "outputs": len(outputs),
    }
