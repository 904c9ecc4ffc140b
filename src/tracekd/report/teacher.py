"""Teacher rows of the report: the teacher's own outputs as a model of their own (its first
samples on the test split, untrained: the `baseline` column), and the trace lengths of every cell
(table here; the plot of answer accuracy against length is `plots.accuracy_by_length`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekd.jsonio import read_json
from tracekd.score.metrics import num, pct
from tracekd.score.outputs import read_rows
from tracekd.traces.conditions import BASELINE


def cell_lengths(folders: list[Path]) -> dict[str, Any] | None:
    """Mean over seeds of each cell's lengths.json (target and output tokens)."""
    found = [read_json(f / "lengths.json") for f in folders if (f / "lengths.json").is_file()]
    if not found:
        return None
    out: dict[str, Any] = {}
    for key in ("target_tokens", "output_tokens"):
        vals = [x[key] for x in found if x.get(key) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    return out


def teacher_name(teach_summary: dict[str, Any]) -> str:
    name = str(teach_summary.get("teacher") or "teacher").split(":", 1)[-1]
    return f"teacher ({Path(name).name or name})"


def teacher_groups(run: Path) -> list[dict[str, Any]]:
    """One group per taught dataset, from the per-example rows of run/teacher/<dataset>/
    (teacher_scores.examples.jsonl: the teacher's first samples, scored like a model's outputs)."""
    from tracekd.report.results import group_results
    from tracekd.traces.teacher import SUMMARY_FILE, TEACHER_SCORES_EXAMPLES

    groups = []
    for folder in sorted(p for p in (run / "teacher").glob("*") if (p / TEACHER_SCORES_EXAMPLES).is_file()):
        path = folder / TEACHER_SCORES_EXAMPLES
        teach = read_json(folder / SUMMARY_FILE)
        g = group_results(folder.name, teacher_name(teach), BASELINE, {0: read_rows(path)})
        g["examples"] = [str(path.relative_to(run))]
        g["teacher"] = {"acceptance": teach["acceptance"]["overall"], "trace_style": "freeform"}
        groups.append(g)
    return groups


def length_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Trace length per group that has one: mean tokens of the training targets and of the outputs."""
    rows = []
    for g in results["groups"]:
        lengths = g.get("lengths")
        if not lengths:
            continue
        rows.append(
            [
                g["dataset"],
                g["model"],
                g["condition"],
                num(lengths.get("target_tokens"), ".0f"),
                num(lengths.get("output_tokens"), ".0f"),
                pct(g["rates"]["answer_accuracy"]["mean"]),
            ]
        )
    return ["dataset", "model", "condition", "target tokens", "output tokens", "answer %"], rows
