"""results.json: every cell's per-example rows, aggregated per (dataset, model, condition).

Each group is computed from the per-example rows of all its seeds (the cells'
scores.examples.jsonl), keyed by example id, with `score.evaluate.statistics`: every rate with a
95 % interval from a bootstrap over test items that keeps all seeds of an item together (the same
method for every condition, the untrained baseline included; per-seed values and their sd beside
it); per step the pooled 2x2 table (the paper's test), the Cochran-Mantel-Haenszel test stratified
by subset x seed, per-subset and per-seed tables, the logistic regression, the same under the
paper's definitions; and the findings in words, with the training-loss caveat from each cell's
train_summary.json (`stats.loss_trend`). The findings of all groups are also listed at the top.
Nothing here depends on timing, so an interrupted and resumed run gives the same file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tracekd.jsonio import write_json_atomic, write_jsonl_atomic
from tracekd.report.outputs import check_results
from tracekd.report.teacher import cell_lengths, teacher_groups
from tracekd.score.evaluate import STATISTICS_KEYS, statistics, subset_rates
from tracekd.score.findings import summary_findings
from tracekd.score.intervention_outputs import read_intervention_rows
from tracekd.score.interventions import measures
from tracekd.score.outputs import read_rows
from tracekd.score.rescore import CONDITION_ORDER, published_model
from tracekd.score.stats import loss_trend
from tracekd.traces.conditions import BASELINE

INTERVENTION_ROWS = Path("interventions") / "interventions.jsonl"  # in a cell's folder (`tracekd intervene`)


def _loss_caveats(training: dict[str, dict[str, Any]]) -> list[str]:
    falling = {s: t for s, t in training.items() if t["falling"]}
    unknown = {s: t for s, t in training.items() if t["falling"] is None}
    out = []
    if falling:
        out.append(
            "training loss still falling at the end ("
            + ", ".join(
                f"seed {s}: fitted drop {100 * t['relative_drop']:.0f} % over the last quarter of steps, p {t['p']:.2g}"
                for s, t in falling.items()
            )
            + ")"
        )
    if unknown:
        out.append(
            "training-loss trend unknown ("
            + ", ".join(f"seed {s}: {t['points']} logged losses in the last quarter" for s, t in unknown.items())
            + ")"
        )
    return out


def group_results(
    dataset: str,
    model: str,
    condition: str,
    rows_by_seed: dict[Any, list[dict[str, Any]]],
    training: dict[str, dict[str, Any]] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One group from its per-example rows (one list per seed); `training`: seed -> `loss_trend`;
    `stats`: `statistics(rows_by_seed)` when the caller already has it."""
    rows = [r for rs in rows_by_seed.values() for r in rs]
    stats = stats or statistics(rows_by_seed)
    status = Counter(r["status"] for r in rows)
    g: dict[str, Any] = {
        "dataset": dataset,
        "model": model,
        "condition": condition,
        "seeds": list(rows_by_seed),
        "n": len({r["id"] for r in rows}),
        "outputs": len(rows),
        **{k: v for k, v in stats.items() if k != "seeds"},
        "by_subset": subset_rates(rows),
        "status": {k: status.get(k, 0) for k in ("ok", "empty", "unparsable", "missing")},
    }
    if training is not None:
        g["training"] = training
    g["findings"] = summary_findings(g, f"{dataset} / {model} / {condition}", _loss_caveats(training or {}))
    return g


def write_results(
    path: Path, name: str, kind: str, config: dict[str, Any], conditions: list[str], groups: list[dict[str, Any]]
) -> dict[str, Any]:
    """results.json (checked against `report.outputs.Results` first)."""
    findings = [
        {"dataset": g["dataset"], "model": g["model"], "condition": g["condition"], **f}
        for g in groups
        for f in g["findings"]
    ]
    results = {
        "name": name,
        "kind": kind,
        "findings": findings,
        "config": config,
        "conditions": conditions,
        "groups": groups,
    }
    check_results(results, path)
    write_json_atomic(path, results)
    return results


def results_from_run(cfg, run: Path, cells) -> dict[str, Any]:
    groups: dict[tuple, dict] = {}
    for c in cells:
        folder = c.folder(run)
        g = groups.setdefault(
            (c.dataset.name, c.model.name, c.condition), {"rows": {}, "training": {}, "examples": [], "folders": []}
        )
        path = folder / "scores.examples.jsonl"
        g["rows"][c.seed] = read_rows(path)
        g["examples"].append(str(path.relative_to(run)))
        g["folders"].append(folder)
        summary = folder / "train" / "train_summary.json"
        if summary.is_file():
            g["training"][str(c.seed)] = loss_trend(json.loads(summary.read_text()).get("log_history", []))
    out_groups = []
    for (d, m, cond), g in groups.items():
        res = group_results(d, m, cond, g["rows"], g["training"] or None)
        res["examples"] = g["examples"]
        res["lengths"] = cell_lengths(g["folders"])
        rows = {
            seed: read_intervention_rows(f / INTERVENTION_ROWS)
            for seed, f in zip(g["rows"], g["folders"], strict=True)
            if (f / INTERVENTION_ROWS).is_file()
        }
        if rows:
            res["interventions"] = measures(rows, f"{d} / {m} / {cond}")
        out_groups.append(res)
    teachers = teacher_groups(run)  # the teacher's own outputs, as an untrained model of its own
    conditions = list(cfg.conditions)
    if teachers and BASELINE not in conditions:
        conditions.insert(0, BASELINE)
    return write_results(
        run / "results.json",
        cfg.name,
        "experiment",
        json.loads(cfg.model_dump_json()),
        conditions,
        out_groups + teachers,
    )


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
    return write_results(
        out / "results.json", f"rescore of {len(rescore['files'])} published files", "rescore", config, order, groups
    )
