"""The formats of published outputs `tracekd rescore` reads: a registry, like the datasets.

A format is one `RescoreFormat` in `REGISTRY` (added by `register`, a name taken once): its name,
its words, how a file of it is read (each record with the dataset example it answers, joined by
question and facts: `record_key`), and the evidence rule its models were trained to cite.

`trace-check-qa` (the paper's published CoTempQA outputs): JSON Lines with `input.text`,
`prediction`, `gold`, `triple_element`, `question`, `facts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tracekd.data.schema import Example, clean_text
from tracekd.errors import InputError
from tracekd.jsonio import read_jsonl
from tracekd.registry import Registry


def record_key(question: str, facts: list[str]) -> tuple[str, tuple[str, ...]]:
    """How a record and a dataset example are joined: question and facts, cleaned."""
    return _clean(question), tuple(map(_clean, facts))


@lru_cache(maxsize=131072)
def _clean(text: str) -> str:
    return clean_text(text)


def read_trace_check_qa(path: Path, index: dict[tuple, Example]) -> list[tuple[Example, dict[str, Any]]]:
    """Each record with the example it answers."""
    out = []
    for lineno, rec in read_jsonl(path):
        for key, typ in (("prediction", str), ("question", str), ("facts", list), ("gold", list)):
            if not isinstance(rec.get(key), typ):
                raise InputError(
                    f"not a trace-check-qa record: field {key!r} missing or not a {typ.__name__}", path, lineno
                )
        ex = index.get(record_key(rec["question"], rec["facts"]))
        if ex is None:
            raise InputError("no dataset example has this record's question and facts", path, lineno)
        if sorted(clean_text(g) for g in rec["gold"]) != sorted(ex.answers):
            raise InputError(f"the record's gold answers differ from example {ex.id}'s", path, lineno)
        out.append((ex, rec))
    if not out:
        raise InputError("file has no records", path)
    return out


@dataclass(frozen=True)
class RescoreFormat:
    """One format of published outputs: `read(path, index)` -> each record with the dataset example
    it answers (`index`: the examples by `record_key`); `trained_rule`: the
    evidence rule its models were trained to cite (the primary rule by default)."""

    name: str
    doc: str
    read: Callable[[Path, dict[tuple, Example]], list[tuple[Example, dict[str, Any]]]]
    trained_rule: str


#: the formats `tracekd rescore` reads, a registry like the datasets
REGISTRY: Registry[RescoreFormat] = Registry("a rescore format")


def register(fmt: RescoreFormat) -> RescoreFormat:
    """Add a format to the registry under its `name` (a name is taken once)."""
    return REGISTRY.add(fmt.name, fmt)


register(
    RescoreFormat(
        "trace-check-qa",
        "the paper's published CoTempQA outputs, JSON Lines",
        read_trace_check_qa,
        trained_rule="paper",
    )
)
