"""`tracekd rescore`: score published model outputs like any prediction.

Format `trace-check-qa` (the paper's published CoTempQA outputs): JSON Lines with `input.text`,
`prediction`, `gold`, `triple_element`, `question`, `facts`. Each record is joined to exactly one
dataset example by its question and facts (never by answer substrings).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from tracekd.data import get_dataset
from tracekd.data.schema import Example, clean_text
from tracekd.errors import InputError
from tracekd.jsonio import read_jsonl
from tracekd.score.evaluate import score_output, summarize
from tracekd.score.findings import rescore_findings

FORMATS = ("trace-check-qa",)
_CONDITION = (
    (re.compile(r"-sft-adapter-reasoning-facts-perturbed(?:_|\.|$)"), "incorrect"),
    (re.compile(r"-sft-adapter-reasoning-facts(?:_|\.|$)"), "correct"),
    (re.compile(r"-sft-adapter(?:_|\.|$)"), "answer_only"),
)


def condition_from_name(name: str) -> str:
    """The training condition from the published naming."""
    for pattern, cond in _CONDITION:
        if pattern.search(name):
            return cond
    return "unknown"


def _key(question: str, facts: list[str]) -> tuple[str, tuple[str, ...]]:
    return _clean(question), tuple(map(_clean, facts))


@lru_cache(maxsize=131072)
def _clean(text: str) -> str:
    return clean_text(text)


def read_trace_check_qa(path: Path, index: dict[tuple, Example]) -> list[tuple[Example, str]]:
    out = []
    for lineno, rec in read_jsonl(path):
        for key, typ in (("prediction", str), ("question", str), ("facts", list), ("gold", list)):
            if not isinstance(rec.get(key), typ):
                raise InputError(f"not a trace-check-qa record: field {key!r} missing or not a {typ.__name__}", path, lineno)
        ex = index.get(_key(rec["question"], rec["facts"]))
        if ex is None:
            raise InputError("no dataset example has this record's question and facts", path, lineno)
        if sorted(clean_text(g) for g in rec["gold"]) != sorted(ex.answers):
            raise InputError(f"the record's gold answers differ from example {ex.id}'s", path, lineno)
        out.append((ex, rec["prediction"]))
    if not out:
        raise InputError("file has no records", path)
    return out


def _published(path: Path) -> dict[str, Any] | None:
    """The scores the paper's code reported for this file (evaluation_results/<subset>/<name>)."""
    parts = path.resolve().parts
    if "evaluation_outputs" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("evaluation_outputs")
    cand = Path(*parts[:i], "evaluation_results", *parts[i + 1:])
    try:
        return json.loads(cand.read_text())
    except (OSError, ValueError):
        return None


def rescore(fmt: str, dataset: str, source: str, files: list[str], ir_rule: str | None = None,
            rows_out: dict[str, list] | None = None) -> dict[str, Any]:
    """Scores per file and per condition (files pooled). `rows_out`, if given, receives the
    per-example rows of each condition (for the report's explorer)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not files:
        raise InputError("give at least one output file to rescore")
    ds = get_dataset(dataset, ir_rule=ir_rule)
    index: dict[tuple, Example] = {}
    for ex in ds.read(source):  # decomposed below, only the examples the files refer to
        k = _key(ex.question, [c.text for c in ex.context])
        if k in index:
            raise InputError(f"examples {index[k].id} and {ex.id} have the same question and facts", source)
        index[k] = ex
    results: dict[str, Any] = {"format": fmt, "dataset": dataset, "source": str(source), "ir_rule": ir_rule or "tracekd",
                               "files": {}, "by_condition": {}}
    rows_by_condition: dict[str, list] = {}
    cache: dict[str, Example] = {}

    def decomposed(ex: Example) -> Example:
        if ex.id not in cache:
            cache[ex.id] = ds.decompose(ex)
        return cache[ex.id]

    for f in files:
        path = Path(f)
        pairs = read_trace_check_qa(path, index)
        rows = [score_output(ds, decomposed(ex), pred) for ex, pred in pairs]
        cond = condition_from_name(path.name)
        subsets = sorted({r["subset"] for r in rows})
        summary = summarize(rows, ds)
        results["files"][str(path)] = {
            "condition": cond,
            "subset": subsets[0] if len(subsets) == 1 else subsets,
            "published": _published(path),
            "summary": summary,
        }
        rows_by_condition.setdefault(cond, []).extend(rows)
    if rows_out is not None:
        rows_out.update(rows_by_condition)
    for cond, rows in rows_by_condition.items():
        ids = [r["id"] for r in rows]
        results["by_condition"][cond] = {"files": sum(v["condition"] == cond for v in results["files"].values()),
                                         "unique_examples": len(set(ids)), "summary": summarize(rows, ds)}
    return {"findings": rescore_findings(results), **results}
