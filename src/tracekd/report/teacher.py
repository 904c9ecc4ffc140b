"""Teacher rows of the report: the teacher's own outputs as a model of their own (its first
samples on the test split, untrained: the `baseline` column), and the trace lengths of every cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASELINE = "baseline"


def cell_lengths(folders: list[Path]) -> dict[str, Any] | None:
    """Mean over seeds of each cell's lengths.json (target and output tokens)."""
    found = [json.loads((f / "lengths.json").read_text()) for f in folders if (f / "lengths.json").is_file()]
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
    """One group per taught dataset, from run/teacher/<dataset>/teacher_scores.json."""
    from tracekd.report.results import group_results
    from tracekd.traces.teacher import SUMMARY_FILE, TEACHER_SCORES, TEACHER_SCORES_EXAMPLES

    groups = []
    for folder in sorted(p for p in (run / "teacher").glob("*") if (p / TEACHER_SCORES).is_file()):
        scores = json.loads((folder / TEACHER_SCORES).read_text())
        teach = json.loads((folder / SUMMARY_FILE).read_text())
        g = group_results(folder.name, teacher_name(teach), BASELINE, [0], [scores])
        g["examples"] = [str((folder / TEACHER_SCORES_EXAMPLES).relative_to(run))]
        g["teacher"] = {"acceptance": teach["acceptance"]["overall"], "trace_style": "freeform"}
        groups.append(g)
    return groups


def length_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Trace length per group that has one: mean tokens of the training targets and of the outputs."""
    def num(x):
        return "—" if x is None else f"{x:.0f}"

    rows = []
    for g in results["groups"]:
        lengths = g.get("lengths")
        if not lengths:
            continue
        rows.append([g["dataset"], g["model"], g["condition"], num(lengths.get("target_tokens")),
                     num(lengths.get("output_tokens")), f"{100 * g['rates']['answer_accuracy']['mean']:.1f}"])
    return ["dataset", "model", "condition", "target tokens", "output tokens", "answer %"], rows


def length_plot(results: dict[str, Any]) -> bytes | None:
    """Answer accuracy against trace length: training targets (left) and outputs (right), one
    point per (dataset, model, condition)."""
    from tracekd.report.plots import _plt, _png

    points = [(g, g.get("lengths") or {}) for g in results["groups"]]
    if not any(v.get(k) is not None for _, v in points for k in ("target_tokens", "output_tokens")):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, key, title in zip(axes, ("target_tokens", "output_tokens"), ("training target", "model output")):
        for g, lengths in points:
            if lengths.get(key) is None:
                continue
            y = 100 * g["rates"]["answer_accuracy"]["mean"]
            ax.scatter(lengths[key], y, s=18)
            ax.annotate(g["condition"], (lengths[key], y), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"{title} length (tokens, log scale)")
        ax.set_title(f"answer accuracy vs {title} length", fontsize=8)
    axes[0].set_ylabel("answer accuracy (%)")
    axes[0].set_ylim(0, 100)
    fig.tight_layout()
    return _png(fig)
