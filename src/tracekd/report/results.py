"""results.json: every cell's per-example rows, aggregated per (dataset, model, condition).

Each group is computed from the per-example rows of all its seeds (the cells'
scores.examples.jsonl), keyed by example id, with `score.evaluate.statistics`: every rate with a
95 % interval from a bootstrap over test items that keeps all seeds of an item together (the same
method for every condition, the untrained baseline included; per-seed values and their sd beside
it); per step the pooled 2x2 table (the paper's test), the Cochran-Mantel-Haenszel test stratified
by subset x seed, per-subset and per-seed tables, the logistic regression, the same under the
paper's definitions; and the findings in words, with the training-loss caveat from each cell's
train_summary.json (`train.diagnostics.loss_trend`). The findings of all groups are also listed at the top.
Nothing here depends on timing, so an interrupted and resumed run gives the same file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tracekd import layout
from tracekd.errors import InputError
from tracekd.jsonio import write_json_atomic
from tracekd.report.outputs import check_results
from tracekd.report.summary import comparison_verdict
from tracekd.report.teacher import cell_lengths, teacher_outputs
from tracekd.score.evaluate import statistics, subset_rates
from tracekd.score.findings import summary_findings
from tracekd.score.intervention_outputs import read_intervention_rows
from tracekd.score.interventions import measures
from tracekd.score.outputs import ExampleRow, read_rows, validated
from tracekd.score.stats import paired_comparison
from tracekd.traces.conditions import BASELINE
from tracekd.train.diagnostics import loss_trend

INTERVENTION_ROWS = Path(layout.CELL_INTERVENTIONS) / layout.INTERVENTION_ROWS  # in a cell's folder


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


def by_item(rows_by_seed: dict[Any, list[dict[str, Any]]]) -> dict[str, list[bool]]:
    """Item id -> the answer correctness of each seed's output on it."""
    out: dict[str, list[bool]] = {}
    for rows in rows_by_seed.values():
        for r in rows:
            out.setdefault(r["id"], []).append(bool(r["answer"]["correct"]))
    return out


def comparisons(conditions: list[str], rows: dict[tuple[str, str, str], dict[Any, list]]) -> list[dict[str, Any]]:
    """Every pair of conditions of one dataset and model, compared on the items both have
    (`stats.paired_comparison`), the later condition of `conditions` first, with a sentence."""
    out = []
    for dataset, model in dict.fromkeys((d, m) for d, m, _ in rows):
        have = [c for c in conditions if (dataset, model, c) in rows]
        for j, a in enumerate(have):
            for b in have[:j]:
                cmp = paired_comparison(by_item(rows[dataset, model, a]), by_item(rows[dataset, model, b]))
                out.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "a": a,
                        "b": b,
                        **cmp,
                        "text": _compare_text(dataset, model, a, b, cmp),
                    }
                )
    return out


def _compare_text(dataset: str, model: str, a: str, b: str, c: dict[str, Any]) -> str:
    head = f"{dataset} / {model} — {a} vs {b}"
    if not c["items"]:
        return f"{head}: no item in common, not compared."
    lo, hi = c["ci95"]
    what = comparison_verdict(a, b, c)
    return (
        f"{head} on the same {c['items']} items: {what} (accuracy {100 * c['accuracy'][0]:.1f} vs "
        f"{100 * c['accuracy'][1]:.1f} %, difference {100 * c['difference']:+.1f} points [95 % CI {100 * lo:+.1f}, "
        f"{100 * hi:+.1f}], paired bootstrap over items; exact sign test p = {c['p']:.3g}: {c['a_better']} items "
        f"better under {a}, {c['b_better']} under {b}, seeds averaged within an item)."
    )


def write_rows(path: Path, rows: dict[tuple[str, str, str], dict[Any, list]]) -> None:
    """Every per-example row the statistics are computed from, with its dataset, model, condition
    and seed, as gzip-compressed JSON Lines with fixed bytes (no time stamp, no file name in the
    header), so that anyone can recompute every number of results.json."""
    import gzip
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        for (dataset, model, condition), by_seed in rows.items():
            for seed, rs in by_seed.items():
                for r in rs:
                    keys = {"dataset": dataset, "model": model, "condition": condition, "seed": seed}
                    gz.write((json.dumps({**keys, **r}, ensure_ascii=False) + "\n").encode())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def read_rows_file(path: Path) -> dict[tuple[str, str, str], dict[Any, list[dict[str, Any]]]]:
    """rows.jsonl.gz back to the rows of each (dataset, model, condition) by seed, each row checked."""
    import gzip

    out: dict[tuple[str, str, str], dict[Any, list[dict[str, Any]]]] = {}
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"not the gzip-compressed JSON Lines tracekd writes: {e}", path) from None
    for lineno, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            key, seed = (row.pop("dataset"), row.pop("model"), row.pop("condition")), row.pop("seed")
        except (ValueError, KeyError, AttributeError, TypeError):
            raise InputError("not a row with its dataset, model, condition and seed", path, lineno) from None
        row = validated(ExampleRow, row, path, "not a per-example row tracekd writes", lineno)
        out.setdefault(key, {}).setdefault(seed, []).append(row)
    return out


def write_results(
    path: Path,
    name: str,
    kind: str,
    config: dict[str, Any],
    conditions: list[str],
    groups: list[dict[str, Any]],
    rows: dict[tuple[str, str, str], dict[Any, list]] | None = None,
    intervention_rows: dict[tuple[str, str, str], dict[Any, list]] | None = None,
) -> dict[str, Any]:
    """results.json (checked against `report.outputs.Results` first); with `rows` (the groups'
    per-example rows by seed), the paired comparisons of the conditions and rows.jsonl.gz beside it;
    with `intervention_rows`, interventions.jsonl.gz (every intervention's row) beside it too."""
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
    if rows:
        results["comparisons"] = comparisons(conditions, rows)
        results["rows"] = layout.ROWS
    if intervention_rows:
        results["intervention_rows"] = layout.ALL_INTERVENTION_ROWS
    check_results(results, path)
    if rows:
        write_rows(path.with_name(layout.ROWS), rows)
    if intervention_rows:
        write_rows(path.with_name(layout.ALL_INTERVENTION_ROWS), intervention_rows)
    write_json_atomic(path, results)
    return results


def teacher_groups(run: Path) -> list[dict[str, Any]]:
    """The teacher's own outputs, as an untrained model of its own (the `baseline` column): one
    group per taught dataset."""
    groups = []
    for t in teacher_outputs(run):
        g = group_results(t["dataset"], t["model"], BASELINE, {0: t["rows"]})
        g["examples"] = [t["examples"]]
        g["teacher"] = t["teacher"]
        groups.append(g)
    return groups


def results_from_run(cfg, run: Path, cells) -> dict[str, Any]:
    groups: dict[tuple, dict] = {}
    for c in cells:
        folder = c.folder(run)
        g = groups.setdefault(
            (c.dataset.name, c.model.name, c.condition), {"rows": {}, "training": {}, "examples": [], "folders": []}
        )
        path = folder / layout.SCORES_EXAMPLES
        g["rows"][c.seed] = read_rows(path)
        g["examples"].append(str(path.relative_to(run)))
        g["folders"].append(folder)
        summary = folder / layout.CELL_TRAIN / layout.TRAIN_SUMMARY
        if summary.is_file():
            g["training"][str(c.seed)] = loss_trend(json.loads(summary.read_text()).get("log_history", []))
    out_groups = []
    intervention_rows = {}
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
            intervention_rows[(d, m, cond)] = rows
        out_groups.append(res)
    teachers = teacher_groups(run)
    conditions = list(cfg.conditions)
    if teachers and BASELINE not in conditions:
        conditions.insert(0, BASELINE)
    return write_results(
        run / layout.RESULTS,
        cfg.name,
        "experiment",
        json.loads(cfg.model_dump_json()),
        conditions,
        out_groups + teachers,
        {key: g["rows"] for key, g in groups.items()},
        intervention_rows,
    )
