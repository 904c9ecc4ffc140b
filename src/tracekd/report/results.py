"""results.json: every cell's scores, aggregated per (dataset, model, condition) over seeds.

Per group: each rate's mean, standard deviation and 95 % interval over seeds (a t interval with
two or more seeds; with one seed, the Wilson interval of that run's proportion), and the 2x2
association statistics of the table pooled over seeds. Nothing here depends on timing, so an
interrupted and resumed run gives the same file as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tracekd.report.teacher import BASELINE, cell_lengths, teacher_groups
from tracekd.score.stats import aggregate_seeds, association, pooled, reading

RATES = {
    "answer_accuracy": lambda s: s["answer"]["accuracy"],
    "label_accuracy": lambda s: s["steps"]["label_accuracy"],
    "evidence_exact": lambda s: s["steps"]["evidence"]["exact"],
    "evidence_f1": lambda s: s["steps"]["evidence"]["f1"],
    "trace_accuracy": lambda s: s["steps"]["trace_accuracy"],
    "parse_rate": lambda s: s["parsed"]["answers"] / s["n"],
}
STEPS = ("label", "evidence", "trace")


def _interval(values: list[float], n_examples: int) -> list[float | None]:
    from scipy import stats

    if len(values) >= 2:
        m = sum(values) / len(values)
        sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
        half = stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
        return [m - half, m + half]
    if n_examples == 0:
        return [None, None]
    k = round(values[0] * n_examples)
    ci = stats.binomtest(k, n_examples).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def group_results(dataset: str, model: str, condition: str, seeds: list[int], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    per_seed = [{k: f(s) for k, f in RATES.items()} for s in summaries]
    agg = aggregate_seeds(per_seed)
    n = summaries[0]["n"]
    rates = {}
    for k in RATES:
        vals = [r[k] for r in per_seed]
        rates[k] = {**agg[k], "ci95": _interval(vals, n), "per_seed": vals}
    assoc = {}
    for step in STEPS:
        table = pooled([s["association"][step]["table"] for s in summaries])
        a = association(table)
        a["reading"] = reading(a, step)
        assoc[step] = a
    subsets = sorted({k for s in summaries for k in s["by_subset"]})
    by_subset = {
        sub: {"n": summaries[0]["by_subset"].get(sub, {}).get("n", 0),
              **{key: sum(s["by_subset"][sub][key] for s in summaries if sub in s["by_subset"]) / len(summaries)
                 for key in ("answer_accuracy", "label_accuracy", "evidence_exact", "trace_accuracy")}}
        for sub in subsets
    }
    extra = {}
    if "upstream" in summaries[0]["answer"]:
        extra["upstream_answer_accuracy"] = sum(s["answer"]["upstream"]["acc"] for s in summaries) / len(summaries)
    return {
        "dataset": dataset, "model": model, "condition": condition, "seeds": seeds, "n": n,
        "rates": rates, "association": assoc, "by_subset": by_subset,
        "status": {k: sum(s["status"].get(k, 0) for s in summaries) for k in ("ok", "empty", "unparsable", "missing")},
        **extra,
    }


def results_from_run(cfg, run: Path, cells) -> dict[str, Any]:
    groups: dict[tuple, list] = {}
    for c in cells:
        summary = json.loads((c.folder(run) / "scores.json").read_text())
        groups.setdefault((c.dataset.name, c.model.name, c.condition), []).append((c.seed, summary, c.folder(run)))
    out_groups = []
    for (d, m, cond), items in groups.items():
        g = group_results(d, m, cond, [s for s, _, _ in items], [x for _, x, _ in items])
        g["examples"] = [str((f / "scores.examples.jsonl").relative_to(run)) for _, _, f in items]
        g["lengths"] = cell_lengths([f for _, _, f in items])
        out_groups.append(g)
    teachers = teacher_groups(run)  # the teacher's own outputs, as an untrained model of its own
    conditions = list(cfg.conditions)
    if teachers and BASELINE not in conditions:
        conditions.insert(0, BASELINE)
    results = {
        "name": cfg.name,
        "kind": "experiment",
        "config": json.loads(cfg.model_dump_json()),
        "conditions": conditions,
        "groups": out_groups + teachers,
    }
    from tracekd.jsonio import write_json_atomic

    write_json_atomic(run / "results.json", results)
    return results


def results_from_rescore(rescore: dict[str, Any], rows_by_condition: dict[str, list[dict]], out: Path) -> dict[str, Any]:
    """The same schema for published outputs: one group per training condition (files pooled)."""
    from tracekd.jsonio import write_json_atomic, write_jsonl_atomic

    models = sorted({Path(p).name.split("-sft-adapter")[0] for p in rescore["files"]})
    model = models[0] if len(models) == 1 else "+".join(models)
    groups = []
    order = [c for c in ("answer_only", "correct", "incorrect", "unknown") if c in rescore["by_condition"]]
    for cond in order:
        g = group_results(rescore["dataset"], model, cond, [0], [rescore["by_condition"][cond]["summary"]])
        path = out / "examples" / f"{cond}.jsonl"
        write_jsonl_atomic(path, rows_by_condition[cond])
        g["examples"] = [str(path.relative_to(out))]
        groups.append(g)
    results = {"name": f"rescore of {len(rescore['files'])} published files", "kind": "rescore",
               "config": {"format": rescore["format"], "dataset": rescore["dataset"], "source": rescore["source"],
                          "ir_rule": rescore.get("ir_rule"), "files": sorted(rescore["files"])},
               "conditions": order, "groups": groups}
    write_json_atomic(out / "results.json", results)
    return results
