"""The terminal tables of `tracekd rescore` (per file, per condition, per model) and the tables of
docs/scoring.md on the paper's published files, built on the report's table rows
(`report/tables.py`)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from tracekd.report.tables import cells, findings_panel, odds, print_summary, with_ci
from tracekd.score import metrics
from tracekd.score.metrics import num, pct

UPSTREAM_KEYS = ("acc", "f1", "p", "r", "avg")

RULE_SHORT = {"paper": "P", "tracekd": "T", None: ""}
RULE_COLUMNS = "accuracies in %; ev, tr: evidence and full trace under the paper's (P) and tracekd's (T) evidence rule"


def _other_steps(summary: dict[str, Any]) -> list[metrics.Metric]:
    """The steps the evidence rule does not change, in the metric table's order."""
    rule_steps = metrics.rule_steps()
    return [m for m in metrics.steps() if m.step not in rule_steps and m.step in summary["association"]]


def _step_header(steps: list[metrics.Metric], rules: list[str | None]) -> list[str]:
    """Columns of the rule-independent steps, then each rule's evidence and trace."""
    rule_cols = [f"{step[:2]} {RULE_SHORT[rule]}".strip() for rule in rules for step in metrics.rule_steps()]
    return [*(m.column.replace("answer_", "ans.") for m in steps), *rule_cols]


def _rule_cells(r: dict[str, Any], rules: list[str | None]) -> list[str]:
    """Each rule's evidence and trace accuracy of one file or condition."""
    views = r.get("evidence_rules") or {None: {"steps": r["summary"]["steps"], "rates": r["summary"].get("rates")}}
    return [
        with_ci(views[rule]["rates"][name], "mean") if views[rule].get("rates") else pct(views[rule]["steps"][name])
        for rule in rules
        for name in (f"{step}_accuracy" for step in metrics.rule_steps())
    ]


def _file_rate(s: dict[str, Any], name: str, value: float | None) -> str:
    """A file's rate with its Wilson interval (`rates`; a file scored before them: the rate alone)."""
    rate = (s.get("rates") or {}).get(name)
    return with_ci(rate, "mean") if rate else pct(value)


def files_table(results: dict[str, Any], model: str | None = None) -> Table:
    """One row per rescored file of `model` (default: all): its answer accuracy, parse rate and
    step accuracies under each evidence rule, and the original scorer's accuracy with its five
    numbers checked against the published ones (the test statistics are on the pools)."""
    rules = results.get("evidence_rules") or [None]
    files = [r for r in results["files"].values() if model is None or r.get("model") == model]
    other = _other_steps(files[0]["summary"])
    t = Table(
        title=f"per file ({model or results['model']})",
        caption=f"{RULE_COLUMNS}; [95 % Wilson intervals: one output per item]; unp.: unparsable outputs; "
        "upstr.: the original scorer's acc; published: 'same' "
        "where its acc, f1, p, r and avg all equal the published numbers (one decimal), else the published ones "
        "that differ",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    cols = ["subset", "condition", "n", "answer", "parsed", *_step_header(other, rules)]
    cols += ["unp.", "upstr.", "published"]
    for col in cols:
        left = col in ("model", "subset", "condition", "published")
        # fold, never cut, a cell that does not fit: a truncated number reads as another number
        t.add_column(col, justify="left" if left else "right", overflow="fold", min_width=len(col))
    for r in files:
        s = r["summary"]
        up, pub = r.get("upstream"), r.get("published") or {}
        differ = [k for k in UPSTREAM_KEYS if up and (pub.get(k) is None or round(up[k], 1) != round(pub[k], 1))]
        t.add_row(
            r["subset"] if isinstance(r["subset"], str) else "+".join(r["subset"]),
            r["condition"],
            str(s["n"]),
            _file_rate(s, "answer_accuracy", s["answer"]["accuracy"]),
            _file_rate(s, "parse_rate", s["parsed"]["answers"] / s["n"]),
            *(_file_rate(s, m.name, s["steps"][m.name]) for m in other),
            *_rule_cells(r, rules),
            str(s["status"]["unparsable"]),
            _file_rate(s, "upstream_answer_accuracy", up["acc"] / 100) if up else "—",
            "—" if not up or not pub else ", ".join(f"{k} {num(pub.get(k), '.1f')}" for k in differ) or "same",
        )
    return t


def print_rescore(console: Console, results: dict[str, Any]) -> None:
    """Findings first; then per file and per condition every step, the evidence steps under each
    rule side by side (the primary rule - the one the models were trained to cite - first); with
    several models, the conditions per model too. Every rate with its 95 % interval."""
    console.print(findings_panel(results["findings"], "Findings (per training condition, files pooled)"))
    for model in results.get("models") or [None]:
        console.print(files_table(results, model))
    matched = results.get("matched") or {}
    if any((matched.get("dropped_outputs") or {}).values()):
        console.print(
            "Conditions compared on the matched items (each condition has an output of the model on the item): "
            + ", ".join(f"{c}: {n} outputs left out" for c, n in matched["dropped_outputs"].items())
        )
    for cond, r in results["by_condition"].items():
        title = f"{cond}: all files pooled ({', '.join(r.get('models', [results['model']]))}; n={r['summary']['n']})"
        print_summary(console, title, r["summary"], r.get("evidence_rules"))
    console.print(
        condition_table(results["by_condition"], results.get("evidence_rules"), "by condition (all files pooled)")
    )
    for model, conds in results.get("by_model", {}).items():
        console.print(condition_table(conds, results.get("evidence_rules"), f"by condition: {model}"))


def condition_table(by_condition: dict[str, Any], evidence_rules: list | None, title: str) -> Table:
    """One column per condition, one row per quantity: its model(s), files, outputs, answer
    accuracy and parse rate with their intervals, the step accuracies (with intervals where the
    rate is the primary rule's), the paper's trace-and-answer shares."""
    rules = evidence_rules or [None]
    steps = _other_steps(next(iter(by_condition.values()))["summary"])
    legend = (
        f"{RULE_COLUMNS}; [95 % intervals]: bootstrap over test items; both✓ and P(a|t): trace and answer both "
        "right, and P(answer right | trace right), paper's definitions; upstr.: the original scorer's acc"
    )
    t = Table(title=title, caption=legend, header_style="bold")
    t.add_column("", justify="left", no_wrap=True)
    for cond in by_condition:
        t.add_column(cond, justify="right", no_wrap=True)
    rows: dict[str, list[str]] = {}
    for r in by_condition.values():
        s = r["summary"]
        tr = s["paper"]["association"]["trace"]
        cells = {
            "model": "+".join(r.get("models", [])),
            "files": str(r["files"]),
            "n": str(r.get("outputs", r["unique_examples"])),
            "answer": with_ci(s["rates"]["answer_accuracy"], "mean"),
            "parsed": with_ci(s["rates"]["parse_rate"], "mean"),
            "upstr.": with_ci(s["rates"]["upstream_answer_accuracy"], "mean")
            if "upstream_answer_accuracy" in s["rates"]
            else pct(s["answer"].get("upstream", {}).get("acc")),
            **{col: with_ci(s["rates"][m.name], "mean") for col, m in zip(_step_header(steps, []), steps)},
            **dict(zip(_step_header([], rules), _rule_cells(r, rules))),
            "both✓": with_ci(tr["both_right"]),
            "P(a|t)": with_ci(tr["answer_given_step_right"]),
        }
        for k, v in cells.items():
            rows.setdefault(k, []).append(v)
    for k, row in rows.items():
        t.add_row(k, *row)
    return t


# -- docs/scoring.md: the tables on the paper's published files, made here (tests hold them equal) --
DOCS_STEPS = (("label", "tracekd"), ("label", "paper"), ("evidence", "paper"), ("trace", "paper"))


def _docs_row(cond: str, step: str, defs: str, s: dict[str, Any]) -> str:
    a = s["association"][step] if defs == "tracekd" else s["paper"]["association"][step]
    reg = (s["regression"] if defs == "tracekd" else s["paper"]["regression"])["terms"].get(step)
    st = a["stratified"]
    chi2 = f"{num(st['chi2'], '.2f')} ({num(st['p'], '.2g')})"
    reg_text = odds(reg) if reg and reg.get("estimable") else "— (combined step)" if step == "trace" else "—"
    name = f"{step} ({defs}{', ' + s['paper']['rule'] + ' rule' if defs == 'paper' and step != 'label' else ''})"
    cells = [cond, name, num(a["pooled"]["chi2"], ".1f"), chi2, odds(st), reg_text]
    cells += [pct(a["both_right"]["p"], " %"), pct(a["answer_given_step_right"]["p"], " %")]
    return "| " + " | ".join(cells) + " |"


def scoring_docs_tables(results: dict[str, Any]) -> str:
    """The Markdown of docs/scoring.md's section on the paper's published files: per condition
    with a trace, the label step (both definitions) and the paper's evidence and trace steps with
    the pooled χ², the stratified test, the Mantel-Haenszel and regression odds ratios and the
    paper's shares; then the paper's evidence and trace steps under each named evidence rule."""
    head = (
        "| condition | step (definitions) | pooled χ² (paper's test) | CMH χ² (p), by subset | OR_MH [95 % CI] "
        "| regression OR [95 % CI] | both right | P(answer \\| step right) |\n|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    conds = [c for c in ("correct", "incorrect") if c in results["by_condition"]]
    for cond in conds:
        s = results["by_condition"][cond]["summary"]
        rows += [_docs_row(cond, step, defs, s) for step, defs in DOCS_STEPS]
    rules = ["| condition | evidence rule | evidence right | trace right | evidence a/b/c/d | trace a/b/c/d |"]
    rules.append("|---|---|---|---|---|---|")
    for cond in conds:
        s = results["by_condition"][cond]["summary"]
        for rule, v in s["paper"]["rules"].items():
            n = s["n"]
            ev, tr = (v["association"][k]["table"] for k in ("evidence", "trace"))
            rules.append(
                f"| {cond} | {rule} | {round(v['evidence_accuracy'] * n)}/{n} | {round(v['trace_accuracy'] * n)}/{n} "
                f"| {cells(ev)} | {cells(tr)} |"
            )
    return "\n".join(rows) + "\n\n" + "\n".join(rules) + "\n"
