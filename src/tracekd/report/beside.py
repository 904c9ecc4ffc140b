"""Two results side by side on the same test items: `tracekd report RUN --beside OTHER`.

OTHER is any folder with a results.json (typically `tracekd rescore --report` of the paper's
published outputs). Both are read back to their per-example rows (rows.jsonl.gz, or each group's
examples files), kept to the dataset(s) both have, and restricted to the test items every group of
both has (matched on the stable example id). Each model x condition of either side is then
recomputed on those items alone with `report.results.group_results`, the statistics of every
results.json: answer accuracy, each step's accuracy, and each step's association with the answer
under tracekd's definitions, stratified by subset (x seed) as everywhere. The evidence and trace
steps must be judged under the same gold-evidence rule on both sides (a dataset with several
rules: the run's `ir_rule` and the rescore's `--ir-rule`), else the two are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.layout import RESULTS
from tracekd.report.results import group_results, read_rows_file
from tracekd.report.summary import VERDICT_WORDS, rate_columns, rates_row, step_test
from tracekd.report.tables import cells, odds
from tracekd.score.metrics import num
from tracekd.score.outputs import read_rows

Key = tuple[str, str, str]


def folder_rows(results: dict[str, Any], folder: Path) -> dict[Key, dict[Any, list[dict[str, Any]]]]:
    """Every group's per-example rows by seed: from the rows file where it has the group, else from
    the group's examples files (one per seed)."""
    out: dict[Key, dict[Any, list[dict[str, Any]]]] = {}
    if results.get("rows") and (folder / results["rows"]).is_file():
        out = read_rows_file(folder / results["rows"])
    for g in results["groups"]:
        key = (g["dataset"], g["model"], g["condition"])
        if key in out:
            continue
        files = [folder / e for e in g["examples"]]
        missing = [f for f in files if not f.is_file()]
        if missing or len(files) != len(g["seeds"]):
            raise InputError(
                f"the per-example rows of {' / '.join(key)} are not in this folder (neither in {results.get('rows')} "
                "nor one examples file per seed)",
                missing[0] if missing else folder,
            )
        out[key] = {seed: read_rows(f) for seed, f in zip(g["seeds"], files)}
    return out


def _evidence_rule(results: dict[str, Any], dataset: str) -> str | None:
    """The gold-evidence rule the results judged `dataset`'s evidence under (None: not recorded)."""
    config = results.get("config", {})
    if results["kind"] == "rescore":
        return config.get("ir_rule") if config.get("dataset") == dataset else None
    entry: dict[str, Any] = next((d for d in config.get("datasets", []) if d.get("name") == dataset), {})
    return entry.get("ir_rule")


def side_by_side(results: dict[str, Any], folder: Path, other: dict[str, Any], other_folder: Path) -> dict[str, Any]:
    """The `beside` block of results.json (see the module docstring)."""
    ours, theirs = folder_rows(results, folder), folder_rows(other, other_folder)
    datasets = sorted({k[0] for k in ours} & {k[0] for k in theirs})
    if not datasets:
        raise InputError(
            f"no dataset in common: {', '.join(sorted({k[0] for k in ours}))} here, "
            f"{', '.join(sorted({k[0] for k in theirs}))} beside",
            other_folder / RESULTS,
        )
    for dataset in datasets:
        rules = (_evidence_rule(results, dataset), _evidence_rule(other, dataset))
        if None not in rules and rules[0] != rules[1]:
            raise InputError(
                f"{dataset}'s evidence is judged under the {rules[0]} rule here and the {rules[1]} rule beside: "
                f"the steps would not have the same definitions (rescore with --ir-rule {rules[0]})",
                other_folder / RESULTS,
            )
    pooled = [k for k in theirs if "+" in k[1]]
    if pooled:
        raise InputError(
            f"{pooled[0][1]}: several models pooled in one group; rescore each model's files into its own folder",
            other_folder / RESULTS,
        )
    sides = {"here": ours, "beside": theirs}
    kept = {side: {k: v for k, v in rows.items() if k[0] in datasets} for side, rows in sides.items()}
    ids = {side: [{r["id"] for rs in v.values() for r in rs} for v in rows.values()] for side, rows in kept.items()}
    common = set.intersection(*ids["here"], *ids["beside"])
    if not common:
        raise InputError("no test item in common (matched on the example id)", other_folder / RESULTS)
    cells = []
    for side, rows in kept.items():
        for (dataset, model, condition), by_seed in rows.items():
            mine = {seed: [r for r in rs if r["id"] in common] for seed, rs in by_seed.items()}
            cells.append({"side": side, **_cell(group_results(dataset, model, condition, mine))})
    order = list(dict.fromkeys([*results["conditions"], *other["conditions"]]))
    cells.sort(key=lambda c: (c["dataset"], order.index(c["condition"]), c["side"] != "here"))
    return {
        "name": other["name"],
        "kind": other["kind"],
        "datasets": datasets,
        "items": len(common),
        "items_here": len(set.union(*ids["here"])),
        "items_beside": len(set.union(*ids["beside"])),
        "cells": cells,
    }


def _cell(g: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of one recomputed group."""
    verdicts = {f["step"]: f["verdict"] for f in g["findings"] if f["definitions"] == "tracekd"}
    association = {}
    for step, block in g["association"].items():
        name, test = step_test(block)
        association[step] = {
            "table": block["table"],
            "test": name if block["stratified"]["estimable"] else None,
            "odds_ratio": test.get("odds_ratio"),
            "odds_ratio_ci95": test.get("odds_ratio_ci95") or [None, None],
            "p": test.get("p"),
            "verdict": verdicts.get(step, "not estimable"),
        }
    rates = {k: {"mean": v["mean"], "ci95": v["ci95"]} for k, v in g["rates"].items()}
    keys = ("dataset", "model", "condition", "seeds", "n", "outputs")
    return {**{k: g[k] for k in keys}, "rates": rates, "association": association}


BESIDE_NOTE = (
    "Both results recomputed on the test items they all have (matched on the example id), with the same "
    "definitions (tracekd's) and the same strata (subset, × seed where there are seeds): rates [95 % bootstrap "
    "interval over test items]; per step the odds ratio of a right answer given a right step [95 % CI] and the p of "
    "the stratified test (CMH, or the exact conditional test in small strata), with its verdict."
)


def _source(b: dict[str, Any], side: str) -> str:
    return "this run" if side == "here" else b["name"]


def beside_tables(b: dict[str, Any]) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    """(title, note, (header, rows)): the accuracies, then each step's association."""
    columns = rate_columns(b["cells"])
    head = ["source", "dataset", "model", "condition", "seeds", "items", *(m.column for m in columns)]
    acc = [[_source(b, c["side"]), *rates_row(c, columns)] for c in b["cells"]]
    rows = [
        [_source(b, c["side"]), c["model"], c["condition"], step, cells(a["table"]), *_test(a)]
        for c in b["cells"]
        for step, a in c["association"].items()
    ]
    title = f"Side by side with {b['name']}: the same {b['items']} test items"
    matched = (
        f"{b['items']} items matched: of {b['items_here']} here and {b['items_beside']} in {b['name']}. "
        f"Dataset(s): {', '.join(b['datasets'])}. "
    )
    return [
        (
            f"{title}: accuracy (%)",
            matched + BESIDE_NOTE,
            (head, acc),
        ),
        (
            f"{title}: each step with the answer",
            "a/b/c/d: step right and answer right / step right, answer wrong / step wrong, answer right / both wrong.",
            (["source", "model", "condition", "step", "a/b/c/d", "OR [95 % CI]", "test", "p", "verdict"], rows),
        ),
    ]


def _test(a: dict[str, Any]) -> list[str]:
    return [odds(a), a["test"] or "—", num(a["p"]), VERDICT_WORDS[a["verdict"]]]
