"""results.json of a rescore: the published outputs' per-example rows, one group per training
condition (files pooled), in the schema of every results.json (`report.results.write_results`),
the rows of each condition in examples/<condition>.jsonl beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekd import layout
from tracekd.jsonio import write_jsonl_atomic
from tracekd.report.results import group_results, write_results
from tracekd.rescore.run import CONDITION_ORDER, published_model
from tracekd.score.evaluate import STATISTICS_KEYS


def results_from_rescore(
    rescore: dict[str, Any], rows_by_condition: dict[str, list[dict]], out: Path
) -> dict[str, Any]:
    """The same schema for published outputs: one group per training condition (files pooled)."""
    model = published_model(rescore["files"])
    groups = []
    order = [c for c in CONDITION_ORDER if c in rescore["by_condition"]]
    for cond in order:
        summary = rescore["by_condition"][cond]["summary"]
        stats = {k: summary[k] for k in STATISTICS_KEYS}
        g = group_results(rescore["dataset"], model, cond, {0: rows_by_condition[cond]}, stats=stats)
        path = out / "examples" / f"{cond}.jsonl"
        write_jsonl_atomic(path, rows_by_condition[cond])
        g["examples"] = [str(path.relative_to(out))]
        groups.append(g)
    config = {
        "format": rescore["format"],
        "dataset": rescore["dataset"],
        "source": rescore["source"],
        "ir_rule": rescore.get("ir_rule"),
        "files": sorted(rescore["files"]),
    }
    # several models' rows share item ids: their conditions are compared per model in the rescore itself
    rows = {(rescore["dataset"], model, c): {0: rows_by_condition[c]} for c in order} if "+" not in model else None
    return write_results(
        out / layout.RESULTS,
        f"rescore of {len(rescore['files'])} published files",
        "rescore",
        config,
        order,
        groups,
        rows,
    )
