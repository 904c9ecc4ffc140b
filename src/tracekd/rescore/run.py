"""`tracekd rescore`: score published model outputs like any prediction.

The formats it reads are a registry, like the datasets (`rescore/formats.py`). Format `trace-check-qa` (the paper's published CoTempQA outputs): JSON Lines with `input.text`,
`prediction`, `gold`, `triple_element`, `question`, `facts`. Each record is joined to exactly one
dataset example by its question and facts (never by answer substrings).

The evidence step is judged under every gold-evidence rule the dataset has, each named: by
default the rule the published models were trained to cite (`paper` for this format) is the
primary one (`summary`), and the others stand beside it (`evidence_rules`). The `upstream`
answer scores use the record's own strings, as the original scorer did, and are summed and
rounded as it reported them, beside the published numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tracekd.data import REGISTRY as DATASETS
from tracekd.data import get_dataset
from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.rescore.formats import REGISTRY, record_key
from tracekd.score import metrics
from tracekd.score.answers import upstream_totals
from tracekd.score.evaluate import rejudge_steps, rule_view, score_output, summarize
from tracekd.score.findings import summary_findings
from tracekd.score.steps import authors_code_steps

_PUBLISHED_FIELDS = ("gold", "question", "facts", "triple_element")
_CONDITION = (
    (re.compile(r"-sft-adapter-reasoning-facts-perturbed(?:_|\.|$)"), "incorrect"),
    (re.compile(r"-sft-adapter-reasoning-facts(?:_|\.|$)"), "correct"),
    (re.compile(r"-sft-adapter(?:_|\.|$)"), "answer_only"),
)


#: the training conditions of the published naming, in the order a report lists them
CONDITION_ORDER = ("answer_only", "correct", "incorrect", "unknown")


def condition_from_name(name: str) -> str:
    """The training condition from the published naming."""
    for pattern, cond in _CONDITION:
        if pattern.search(name):
            return cond
    return "unknown"


def published_model(files) -> str:
    """The model(s) of published output files, from their names ("<model>-sft-adapter...")."""
    return "+".join(sorted({Path(p).name.split("-sft-adapter")[0] for p in files}))


def rescore_findings(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Findings for `tracekd rescore`: one set per training condition (files pooled; several
    models pooled are stratified by model, and said so), then one set per model and condition."""
    model = results["model"]
    pooled = len(results.get("models", [model])) > 1
    extra = [f"{len(results['models'])} models pooled, stratified by model"] if pooled else []
    out = []
    for cond, r in results["by_condition"].items():
        for f in summary_findings(r["summary"], f"{model} / {cond}", extra, results["ir_rule"]):
            out.append({"model": model, "condition": cond, **f})
    for m, conds in results.get("by_model", {}).items():
        for cond, r in conds.items():
            for f in summary_findings(r["summary"], f"{m} / {cond}", evidence_rule=results["ir_rule"]):
                out.append({"model": m, "condition": cond, **f})
    return out


def _published(path: Path) -> dict[str, Any] | None:
    """The scores the paper's code reported for this file (evaluation_results/<subset>/<name>)."""
    parts = path.resolve().parts
    if "evaluation_outputs" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("evaluation_outputs")
    cand = Path(*parts[:i], "evaluation_results", *parts[i + 1 :])
    try:
        return json.loads(cand.read_text())
    except (OSError, ValueError):
        return None


def evidence_rules(fmt: str, dataset: str, ir_rule: str | None) -> list[str | None]:
    """The rules to judge evidence under, the primary one first ([None]: the dataset has one)."""
    cls = DATASETS.get(dataset)
    offered = cls.ir_rules if cls is not None else ()
    if not offered:
        if ir_rule is not None:
            raise InputError(f"dataset {dataset!r} has one evidence rule; drop --ir-rule")
        return [None]
    trained = REGISTRY[fmt].trained_rule
    primary = ir_rule or (trained if trained in offered else offered[0])
    if primary not in offered:
        raise InputError(f"ir_rule must be one of {', '.join(offered)}, not {primary!r}")
    return [primary, *(r for r in offered if r != primary)]


def _rule_views(summary: dict[str, Any], by_rule: dict[str | None, list], inference: bool = True) -> dict[str, Any]:
    """Each evidence rule's step scores and association (`rule_view`), the primary rule's (the
    first) taken from its summary; none when the dataset has one rule."""
    primary = next(iter(by_rule))
    changed = [m.name for m in metrics.steps() if m.evidence_rule]
    primary_view = {"steps": summary["steps"], "association": summary["association"]}
    if "rates" in summary:  # a file's (Wilson) or a pool's (bootstrap) intervals
        primary_view["rates"] = {
            k: {x: summary["rates"][k][x] for x in ("mean", "ci95", "method")} for k in changed if k in summary["rates"]
        }
    return {
        rule: primary_view if rule == primary else rule_view(rows, inference)
        for rule, rows in by_rule.items()
        if rule is not None
    }


def rescore(
    fmt: str,
    dataset: str,
    source: str | None,
    files: list[str],
    ir_rule: str | None = None,
    rows_out: dict[str, list] | None = None,
    authors_csv: str | Path | None = None,
) -> dict[str, Any]:
    """Scores per file and per condition (files pooled), under each evidence rule. `rows_out`, if
    given, receives the per-example rows of each condition under the primary rule (for the
    report's explorer). `authors_csv`: the folder of the authors' test CSVs (`<subset>_test.csv`,
    their `sft_dataset_reasoning_with_facts_chat_template`): the paper-definitions steps are also
    judged by the port of their `get_confusion_matrices` (rule `authors-code`)."""
    if fmt not in REGISTRY:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(REGISTRY)}")
    if not files:
        raise InputError("give at least one output file to rescore")
    rules = evidence_rules(fmt, dataset, ir_rule)
    datasets = {rule: get_dataset(dataset, ir_rule=rule) for rule in rules}
    index: dict[tuple, Example] = {}
    for ex in datasets[rules[0]].read(source):  # decomposed below, only the examples the files refer to
        k = record_key(ex.question, [c.text for c in ex.context])
        if k in index:
            raise InputError(f"examples {index[k].id} and {ex.id} have the same question and facts", source)
        index[k] = ex
    results: dict[str, Any] = {
        "format": fmt,
        "dataset": dataset,
        "model": published_model(files),
        "source": str(source),
        "ir_rule": rules[0] or "tracekd",
        "evidence_rules": [r for r in rules if r is not None],
        "files": {},
        "by_condition": {},
    }
    cache: dict[tuple[str | None, str], Example] = {}

    def decomposed(rule: str | None, ex: Example) -> Example:
        if (rule, ex.id) not in cache:
            cache[rule, ex.id] = datasets[rule].decompose(ex)
        return cache[rule, ex.id]

    rows_by: dict[str, dict[str, dict[str | None, list]]] = {}  # condition -> model -> rule -> rows
    for f in files:
        path = Path(f)
        pairs = REGISTRY[fmt].read(path, index)
        cond, model = condition_from_name(path.name), published_model([path])
        primary = []
        for ex, rec in pairs:
            ex = decomposed(rules[0], ex)
            published = {k: rec.get(k, ex.meta.get(k)) for k in _PUBLISHED_FIELDS}
            primary.append(
                score_output(
                    datasets[rules[0]], ex.replace(meta={**ex.meta, "published": published}), rec["prediction"]
                )
            )
        if authors_csv is not None:
            _authors_code(path, pairs, primary, Path(authors_csv))
        by_rule = {
            rule: primary
            if rule == rules[0]
            else [rejudge_steps(r, decomposed(rule, ex)) for r, (ex, _) in zip(primary, pairs)]
            for rule in rules
        }
        for rule, rows in by_rule.items():
            rows_by.setdefault(cond, {}).setdefault(model, {}).setdefault(rule, []).extend(rows)
        summary = summarize(primary, datasets[rules[0]], inference=False)  # the tests are on the files pooled
        upstream = (
            upstream_totals([r["answer"]["upstream"] for r in primary]) if "upstream" in primary[0]["answer"] else None
        )
        subsets = sorted({r["subset"] for r in primary})
        results["files"][str(path)] = {
            "model": model,
            "condition": cond,
            "subset": subsets[0] if len(subsets) == 1 else subsets,
            "published": _published(path),
            "upstream": upstream,
            "summary": summary,
            "evidence_rules": _rule_views(summary, by_rule, inference=False),
        }
    models = sorted({m for by_model in rows_by.values() for m in by_model})
    results["models"] = models
    matched = matched_items(rows_by, rules[0])
    results["matched"] = matched["report"]
    rows_by = matched["rows"]
    if rows_out is not None:
        rows_out.update(
            {cond: [r for m in by_model.values() for r in m[rules[0]]] for cond, by_model in rows_by.items()}
        )
    rows_by = {c: rows_by[c] for c in sorted(rows_by, key=CONDITION_ORDER.index)}
    for cond, by_model in rows_by.items():
        results["by_condition"][cond] = _condition(cond, by_model, rules, datasets[rules[0]], results["files"])
    if len(models) > 1:
        results["by_model"] = {
            model: {
                cond: _condition(cond, {model: by_model[model]}, rules, datasets[rules[0]], results["files"])
                for cond, by_model in rows_by.items()
                if model in by_model
            }
            for model in models
        }
    return {"findings": rescore_findings(results), **results}


def _authors_code(path: Path, pairs: list, rows: list[dict[str, Any]], folder: Path) -> None:
    """Judge each output of one file by the port of the authors' `get_confusion_matrices`, against
    the authors' test CSV of the file's subset, as their script read it (one pass over the file's
    records in order; the gold row of a record whose answer matches no row is the previous one)."""
    import csv

    subsets = {ex.subset for ex, _ in pairs}
    if len(subsets) != 1:
        raise InputError("the authors' code scores one subset per file; this file mixes several", path)
    csv_path = folder / f"{subsets.pop()}_test.csv"
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            csv_rows = list(csv.DictReader(fh))
    except OSError as e:
        raise InputError(f"cannot read the authors' test CSV: {e.strerror}", csv_path) from None
    if not csv_rows or not {"answer", "facts", "reasoning"} <= set(csv_rows[0]):
        raise InputError("not the authors' test CSV: it needs the columns answer, facts and reasoning", csv_path)
    previous = None
    for (_, rec), row in zip(pairs, rows):
        steps, previous = authors_code_steps(rec["prediction"], rec["gold"][0], csv_rows, previous)
        if row["paper"] is not None and steps is not None:
            row["paper"]["by_rule"]["authors-code"] = steps


def authors_matrices(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The three confusion matrices as the authors' script prints them: per subset, each cell's
    count over the evaluated outputs, averaged over the subsets (unweighted), in % rounded to 2
    decimals; answer right: the upstream scorer's acc 100."""
    by_subset: dict[str, list] = {}
    for r in rows:
        by_subset.setdefault(r["subset"], []).append(r)
    out: dict[str, dict[str, float]] = {}
    for step, name in (("label", "category"), ("evidence", "fact"), ("trace", "trace")):
        cells: dict[str, float] = {}
        for group in by_subset.values():
            judged = [r for r in group if r["paper"] is not None and "authors-code" in r["paper"]["by_rule"]]
            for r in judged:
                right = r["paper"]["by_rule"]["authors-code"][f"{step}_correct"]
                key = f"{'correct' if r['answer']['upstream']['correct'] else 'incorrect'}_answer_"
                key += f"{'correct' if right else 'incorrect'}_{name}"
                cells[key] = cells.get(key, 0.0) + 1 / len(judged)
        out[name] = {k: round(v / len(by_subset) * 100, 2) for k, v in sorted(cells.items())}
    return out


def _condition(cond: str, by_model: dict[str, dict], rules: list, ds, files: dict[str, Any]) -> dict[str, Any]:
    """One condition's outputs pooled over files (and models: stratified by model)."""
    by_rule = {rule: [r for m in by_model.values() for r in m[rule]] for rule in rules}
    summary = summarize(by_rule[rules[0]], ds, by_model={m: v[rules[0]] for m, v in by_model.items()})
    ids = [r["id"] for r in by_rule[rules[0]]]
    authors = {"authors_code_matrices": authors_matrices(by_rule[rules[0]])} if _has_authors(by_rule[rules[0]]) else {}
    return {
        **authors,
        "models": sorted(by_model),
        "files": sum(v["condition"] == cond and v["model"] in by_model for v in files.values()),
        "outputs": len(ids),
        "unique_examples": len(set(ids)),
        "summary": summary,
        "evidence_rules": _rule_views(summary, by_rule),
    }


def _has_authors(rows: list[dict[str, Any]]) -> bool:
    return any(r["paper"] is not None and "authors-code" in r["paper"]["by_rule"] for r in rows)


def matched_items(rows_by: dict[str, dict[str, dict]], primary: str | None) -> dict[str, Any]:
    """The outputs on the items every condition has (per model: a (model, item) pair is kept when
    each condition has an output of that model on that item), so that conditions are compared on the
    same items. Nothing is dropped when every condition covers the same pairs (the usual case)."""
    keys = {cond: {(m, r["id"]) for m, v in by_model.items() for r in v[primary]} for cond, by_model in rows_by.items()}
    common = set.intersection(*keys.values()) if keys else set()
    dropped = {cond: len(k - common) for cond, k in keys.items()}
    report = {"pairs": len(common), "dropped_outputs": dropped}
    if not any(dropped.values()):
        return {"rows": rows_by, "report": report}
    kept: dict[str, dict[str, dict]] = {}
    for cond, by_model in rows_by.items():
        for m, v in by_model.items():
            rows = {rule: [r for r in rs if (m, r["id"]) in common] for rule, rs in v.items()}
            if rows[primary]:
                kept.setdefault(cond, {})[m] = rows
    return {"rows": kept, "report": report}
