"""The SFT record: one prepared example in TRL's conversational prompt-completion form (`prompt`:
system + user messages, `completion`: the assistant message), with the condition, the target trace,
its perturbation and the example's gold decomposition beside it. `prepare` writes these records
(`sft_record`); `train` and `generate` read a prepared split back (`read_sft_records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.jsonio import check_published, read_jsonl
from tracekd.layout import split_file
from tracekd.traces.prompt import prompt_messages
from tracekd.traces.render import Trace, render


def sft_record(
    ex: Example, trace: Trace, perturbation: dict[str, Any] | None, condition: str, template: str, label_sentence: str
) -> dict[str, Any]:
    """One example's record: the prompt, the rendered target, and the example's own fields."""
    rec = {
        "id": ex.id,
        "prompt": prompt_messages(ex),
        "completion": [{"role": "assistant", "content": render(trace, template, label_sentence)}],
        "condition": condition,
        "template": template,
        "target": _trace_record(trace),
        "perturbation": perturbation,
    }
    rec.update(ex.to_record())
    return rec


def _trace_record(t: Trace) -> dict[str, Any]:
    rec = {
        "label": t.label,
        "evidence": None if t.evidence is None else list(t.evidence),
        "answers": None if t.answers is None else list(t.answers),
    }
    if t.reasoning is not None:
        rec["reasoning"] = t.reasoning
    return rec


def read_sft_records(data_dir: Path, split: str = "train") -> list[dict[str, Any]]:
    """Read back a prepared split (for training and generation)."""
    path = data_dir / split_file(split)
    check_published(data_dir)
    if not path.is_file():
        raise InputError(f"no {split_file(split)} in the data folder (run `tracekd prepare` first)", data_dir)
    out = []
    seen: set[str] = set()
    for lineno, rec in read_jsonl(path):
        if not isinstance(rec.get("id"), str):
            raise InputError("record needs a string 'id'", path, lineno)
        if rec["id"] in seen:
            raise InputError(f"duplicate id {rec['id']!r}", path, lineno)
        seen.add(rec["id"])
        for key in ("prompt", "completion"):
            if not _messages(rec.get(key)):
                raise InputError(
                    f"record needs {key!r}: a non-empty list of {{role, content}} string messages", path, lineno
                )
        out.append(rec)
    if not out:
        raise InputError(f"{split_file(split)} is empty", path)
    return out


def _messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
    )
