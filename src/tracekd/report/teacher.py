"""Teacher rows of the report: the teacher's own outputs as a model of their own (its first
samples on the test split, untrained: the `baseline` column), and the trace lengths of every cell
(table here; the plot of answer accuracy against length is `plots.accuracy_by_length`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekd.jsonio import read_json
from tracekd.layout import LENGTHS, TEACH_SUMMARY, TEACHER_SCORES_EXAMPLES, teacher_folders
from tracekd.score.metrics import num, pct
from tracekd.score.outputs import read_rows


def cell_lengths(folders: list[Path]) -> dict[str, Any] | None:
    """Mean over seeds of each cell's lengths.json (target and output tokens)."""
    found = [read_json(f / LENGTHS) for f in folders if (f / LENGTHS).is_file()]
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


def teacher_outputs(run: Path) -> list[dict[str, Any]]:
    """Per taught dataset of a run, the teacher's scored outputs (teacher_scores.examples.jsonl of
    run/teacher/<dataset>/: its first samples, scored like a model's outputs): the dataset, the
    teacher's name, the rows, their file (relative to the run) and the teacher's acceptance."""
    out = []
    for folder in teacher_folders(run):
        path = folder / TEACHER_SCORES_EXAMPLES
        teach = read_json(folder / TEACH_SUMMARY)
        out.append(
            {
                "dataset": folder.name,
                "model": teacher_name(teach),
                "rows": read_rows(path),
                "examples": str(path.relative_to(run)),
                "teacher": {"acceptance": teach["acceptance"]["overall"], "trace_style": "freeform"},
            }
        )
    return out


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
