"""Aggregates recomputed from per-example rows, and report.md read back, without tracekd.

A run's numbers (results.json, report.md) are checked against what these plain loops make of
the cells' scores.examples.jsonl rows: rates are counts over the rows a step applies to, tables
count (step, answer) pairs, the report's tables are parsed back from the Markdown. Nothing here
imports tracekd.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
from pathlib import Path

#: how to read each trace step off a row (None: the step does not apply to that example)
STEP_FIELDS = {
    "label": lambda r: r["label_correct"],
    "evidence": lambda r: r["evidence"]["exact"],
    "anchor": lambda r: r["anchor_retrieved"],
    "answer_fact": lambda r: r["answer_fact_retrieved"],
    "trace": lambda r: r["trace_correct"],
}
#: rate name in results.json -> (numerator, denominator) of one row
RATE_FIELDS = {
    "answer_accuracy": lambda r: (float(r["answer"]["correct"]), 1.0),
    "parse_rate": lambda r: (float(r["parsed"]["answers"] is not None), 1.0),
    "evidence_f1": lambda r: (float(r["evidence"]["f1"]), 1.0),
    **{
        f"{step}_accuracy": (lambda r, f=f: (float(bool(f(r))), float(f(r) is not None)))
        for step, f in STEP_FIELDS.items()
    },
}


def cell_rows(run: Path) -> dict[tuple[str, str, str], dict[int, list[dict]]]:
    """(dataset, model, condition) -> seed -> the rows of that cell's scores.examples.jsonl."""
    out: dict[tuple[str, str, str], dict[int, list[dict]]] = {}
    for path in sorted(run.glob("cells/*/*/*/seed-*/scores.examples.jsonl")):
        dataset, model, condition, seed = path.parts[-5:-1]
        with path.open(encoding="utf-8") as f:  # not splitlines(): outputs may hold U+2028 and the like
            rows = [json.loads(line) for line in f]
        out.setdefault((dataset, model, condition), {})[int(seed.removeprefix("seed-"))] = rows
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def rate(rows: list[dict], name: str) -> float | None:
    pairs = [RATE_FIELDS[name](r) for r in rows]
    den = sum(d for _, d in pairs)
    return sum(n for n, _ in pairs) / den if den else None


def seed_rates(rows_by_seed: dict[int, list[dict]], name: str) -> tuple[float | None, list[float | None], float | None]:
    """(pooled over all outputs, per seed, sd of the per-seed values with n - 1; None for one seed)."""
    per_seed = [rate(rows, name) for rows in rows_by_seed.values()]
    pooled = rate([r for rows in rows_by_seed.values() for r in rows], name)
    sd = statistics.stdev(per_seed) if len(per_seed) > 1 and None not in per_seed else None
    return pooled, per_seed, sd


def table(rows: list[dict], step: str) -> list[list[int]]:
    """[[step right & answer right, step right & answer wrong], [step wrong & ..., ...]] over the
    rows the step applies to."""
    t = [[0, 0], [0, 0]]
    for r in rows:
        s = STEP_FIELDS[step](r)
        if s is not None:
            t[0 if s else 1][0 if r["answer"]["correct"] else 1] += 1
    return t


def by(rows: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(str(r[key]), []).append(r)
    return dict(sorted(out.items()))


def pct(x) -> str:
    return "—" if x is None else f"{100 * float(x):.1f}"


def md_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """report.md's tables by the title of their section or of their folded block (<summary>), each
    row a dict keyed by the header."""
    out, title, lines = {}, None, text.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("## "):
            title = line[3:]
        elif line.startswith("<summary>") and line.endswith("</summary>"):
            title = html.unescape(line[len("<summary>") : -len("</summary>")])
        elif line.startswith("| ") and not lines[k - 1].startswith("|"):
            header, body = _cells(line), []
            for x in lines[k + 2 :]:
                if not x.startswith("|"):
                    break
                body.append(dict(zip(header, _cells(x))))
            out[title] = body
    return out


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


Z = 1.959963984540054  # the 97.5 % normal quantile


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, written out."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
