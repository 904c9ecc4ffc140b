"""Tables of scores and statistics: rows as text (shared with the report's Markdown and HTML) and
their terminal rendering (rich) for `tracekd evaluate` and `tracekd rescore` (whose own tables,
per file and per condition, are `rescore/tables.py`).

`*_rows(summary)` return (header, rows); `statistics_group(summary)` renders the statistics of one
summary (stratified tests, per-subset and per-seed tables, the regression, the tables without
flagged examples) and `findings_panel(findings)` the findings in words, for any layout to place.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from tracekd.score import metrics
from tracekd.score.metrics import num, pct

#: answer-scorer numbers that are rates of the metric table, shown there with their intervals
SHOWN_AS_RATES = ("em", "lenient_correct")

Rows = tuple[list[str], list[list[str]]]

CELLS = "a: step right, answer right · b: step right, answer wrong · c: step wrong, answer right · d: both wrong"
ASSOCIATION_NOTE = (
    "χ² pool: Pearson χ² of the table pooled over subsets and seeds (the paper's test; it treats every output as "
    "independent). CMH: Cochran-Mantel-Haenszel χ² and p, stratified as stated, corrected for seeds of one item "
    "(design effect); MH OR: Mantel-Haenszel common odds ratio; BD: Breslow-Day test of one common odds ratio. "
    "both✓: % of all outputs with the step and the answer right (the paper's headline quantity); P(a|s✓) and "
    "P(a|s✗): % of outputs with the step right / wrong whose answer is right. Intervals: bootstrap over test items."
)


def _named(step: str, rule: str | None) -> str:
    return step if rule is None else f"{step} ({rule} rule)"


def with_ci(r: dict[str, Any], key: str = "p") -> str:
    """A proportion in % with its 95 % interval."""
    lo, hi = r.get("ci95", [None, None])
    return pct(r.get(key)) + ("" if lo is None else f" [{pct(lo)}, {pct(hi)}]")


def rate_text(m: metrics.Metric, rate: dict[str, Any]) -> str:
    """A rate of `statistics` as its metric is shown: a proportion with its interval, or a number."""
    return with_ci(rate, "mean") if m.fmt == "pct" else m.format(rate.get("mean"))


def odds(x: dict[str, Any]) -> str:
    lo, hi = x.get("odds_ratio_ci95", [None, None])
    return num(x.get("odds_ratio"), ".2f") + ("" if lo is None else f" [{lo:.2f}, {hi:.2f}]")


def cells(table: list[list[int]]) -> str:
    (a, b), (c, d) = table
    return f"{a}/{b}/{c}/{d}"


def _definitions(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, steps) for tracekd's definitions and, when it evaluated anything, the paper's."""
    out = [("tracekd", s["association"])]
    if s["paper"]["evaluated"]:
        out.append(("paper", s["paper"]["association"]))
    return out


def _tracekd_steps(s: dict[str, Any], rules: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name, association) per step under tracekd's definitions; with `rules` (evidence rule ->
    its view), the steps an evidence rule changes once per rule, named."""
    out = []
    for step, a in s["association"].items():
        if rules and step in metrics.rule_steps():
            out += [(_named(step, rule), view["association"][step]) for rule, view in rules.items()]
        else:
            out.append((step, a))
    return out


def association_rows(s: dict[str, Any], intervals: bool = True, rules: dict[str, Any] | None = None) -> Rows:
    """Per step and definitions: the pooled table and its χ² (the paper's test), the stratified
    test (the headline), and the paper's headline quantity (both right) beside P(answer | step)."""
    share = with_ci if intervals else (lambda r: pct(r["p"]))
    header = [*TEST_HEADER, "BD p", "both✓", "P(a|s✓)", "P(a|s✗)"]
    rows = []
    for defs, steps in _definitions(s):
        named = _tracekd_steps(s, rules) if defs == "tracekd" else list(steps.items())
        for step, a in named:
            bd = num((a["stratified"].get("breslow_day") or {}).get("p"))
            shares = [share(a[k]) for k in ("both_right", "answer_given_step_right", "answer_given_step_wrong")]
            rows.append([*step_test_cells(step, defs, a), bd, *shares])
    return header, rows


TEST_HEADER = ("step", "defs", "a/b/c/d", "χ² pool", "CMH χ²", "CMH p", "MH OR [95 % CI]")


def step_test_cells(step: str, defs: str, block: dict[str, Any]) -> list[str]:
    """One step's table and tests: its cells, the pooled χ², the stratified test and its odds ratio."""
    st = block["stratified"]
    chi2s = [num(block["pooled"]["chi2"], ".2f"), num(st["chi2"], ".2f")]
    return [step, defs, cells(block["table"]), *chi2s, num(st["p"]), odds(st)]


def strata_rows(s: dict[str, Any], key: str) -> Rows | None:
    """The per-subset (`by_subset`) or per-seed (`by_seed`) 2x2 tables of every step (tracekd's
    definitions): each table's own statistics and, where it has several strata (a subset's seeds,
    a seed's subsets), the stratified test within it."""
    found = [(step, name, b) for step, a in s["association"].items() for name, b in a.get(key, {}).items()]
    if not found:
        return None
    within = key == "by_seed" or len(s.get("seeds", [0])) > 1
    header = ["step", "subset" if key == "by_subset" else "seed", "a/b/c/d", "χ²", "Fisher p", "φ", "OR"]
    header += ["CMH χ²", "CMH p", "MH OR [95 % CI]"] if within else []
    rows = []
    for step, name, b in found:
        p, st = b["pooled"], b["stratified"]
        rows.append(
            [
                step,
                name,
                cells(b["table"]),
                num(p["chi2"], ".2f"),
                num(p["fisher_p"]),
                num(p["phi"], ".3f"),
                num(p["odds_ratio"], ".2f"),
                *((num(st["chi2"], ".2f"), num(st["p"]), odds(st)) if within else ()),
            ]
        )
    return header, rows


def regression_rows(s: dict[str, Any]) -> Rows:
    header = ["step", "defs", "adjusted OR [95 % CI]", "p", "note"]
    rows = []
    for defs, _ in _definitions(s):
        reg = s["regression"] if defs == "tracekd" else s["paper"]["regression"]
        for step, term in reg["terms"].items():
            if term.get("estimable"):
                rows.append([step, defs, odds(term), num(term["p"]), ""])
            else:
                rows.append([step, defs, "not estimable", "—", term.get("note") or ""])
        for factor, levels in reg["dropped_levels"].items():
            rows.append(["", defs, "", "", f"{factor} {', '.join(levels)} left out: every answer there is the same"])
    return header, rows


def regression_note(s: dict[str, Any]) -> str:
    steps = ", ".join(k for k in s["association"] if metrics.step_metric(k).in_regression)
    return (
        f"Logistic regression of answer correctness on the steps ({steps}) together, with "
        f"{' and '.join(s['regression']['covariates'])} as covariates; standard errors clustered by test item. "
        "Each odds ratio is that step's association with the answer, the other steps held fixed."
    )


def without_rows(w: dict[str, Any]) -> Rows:
    both = (("tracekd", w["association"]), ("paper", w["paper"]))
    rows = [step_test_cells(step, defs, b) for defs, steps in both for step, b in steps.items()]
    return list(TEST_HEADER), rows


def strata_title(key: str) -> str:
    return f"Per {'subset' if key == 'by_subset' else 'seed'} (tracekd definitions)"


def without_title(flag: str, w: dict[str, Any]) -> str:
    return f"Without the {w['left_out_outputs']} outputs ({w['left_out_items']} items) flagged {flag}"


# -- terminal ------------------------------------------------------------------------------------------
def _rich(rows: Rows, caption: str | None = None, title: str | None = None, wrap_last: bool = False) -> Table:
    header, body = rows
    t = Table(
        show_header=True,
        header_style="bold",
        box=None,
        pad_edge=False,
        caption=caption,
        title=title,
        title_justify="left",
    )
    for i, col in enumerate(header):
        last = wrap_last and i == len(header) - 1
        # fold, never cut, a cell that does not fit: a truncated number reads as another number
        t.add_column(col, justify="left" if i < 2 or last else "right", no_wrap=not last, overflow="fold")
    for r in body:
        t.add_row(*r)
    return t


def metrics_table(s: dict[str, Any], rules: dict[str, Any] | None = None) -> Table:
    """`rules`: the steps under each evidence rule, by rule name."""
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("metric")
    t.add_column("value [95 % CI]", justify="right")
    row = t.add_row

    rule_steps = metrics.rule_steps()
    for m in metrics.METRICS:
        rate = s["rates"].get(m.name)
        if rules and m.step in rule_steps:
            for rule, view in rules.items():
                rated = view.get("rates", {}).get(m.name)
                row(_named(m.title, rule), rate_text(m, rated) if rated else m.format(view["steps"][m.name]))
        elif rate is not None:
            row(m.title, rate_text(m, rate))
    a = s["answer"]
    for key, value in a.items():  # the means of whatever else the dataset's answer scorer measures
        if key not in ("accuracy", "correct", *SHOWN_AS_RATES) and not isinstance(value, dict):
            row(f"answer {key} (mean)", pct(value))
    if "upstream" in a:
        row("answer f1 (upstream scorer, mean)", pct(a["upstream"]["f1"]))
    views: dict[str | None, Any] = dict(rules.items()) if rules else {None: {"steps": s["steps"]}}
    for by, view in views.items():
        ev = view["steps"]["evidence"]
        row(
            _named("evidence P / R / F1 (means)", by), f"{pct(ev['precision'])} / {pct(ev['recall'])} / {pct(ev['f1'])}"
        )
    p = s["paper"]
    for k in p["association"]:
        interval = p.get("ci95", {}).get(f"{k}_accuracy")
        rule = f", {p['rule']} rule" if k != "label" and p.get("rule") else ""
        value = {"p": p[f"{k}_accuracy"], "ci95": interval} if interval else {"p": p[f"{k}_accuracy"]}
        row(f"paper: {k} right{rule}", with_ci(value))
    row(
        "outputs ok / empty / unparsable", f"{s['status']['ok']} / {s['status']['empty']} / {s['status']['unparsable']}"
    )
    if s.get("flags"):
        row("examples flagged", ", ".join(f"{k} {v}" for k, v in s["flags"].items()))
    return t


def association_table(s: dict[str, Any], caption: bool = True, rules: dict[str, Any] | None = None) -> Table:
    by = next(iter(s["association"].values()))["stratified"]["by"]
    note = (
        f"{CELLS}. Steps that do not apply to an example leave it out. CMH stratified by {by}. {ASSOCIATION_NOTE}"
        if caption
        else None
    )
    return _rich(association_rows(s, intervals=False, rules=rules), caption=note)


def statistics_group(s: dict[str, Any], rules: dict[str, Any] | None = None) -> Group:
    parts: list[Any] = [association_table(s, rules=rules)]
    for key in ("by_subset", "by_seed"):
        rows = strata_rows(s, key)
        if rows is not None:
            parts += ["", _rich(rows, title=strata_title(key))]
    parts += ["", _rich(regression_rows(s), caption=regression_note(s), wrap_last=True)]
    for flag, w in s.get("without_flagged", {}).items():
        parts += ["", _rich(without_rows(w), title=without_title(flag, w))]
    return Group(*parts)


def findings_panel(findings: list[dict[str, Any]], title: str = "Findings") -> Panel:
    return Panel("\n".join(f"• {f['text']}" for f in findings) or "(none)", title=title, expand=False)


def print_summary(console: Console, title: str, s: dict[str, Any], rules: dict[str, Any] | None = None) -> None:
    """One summary's metrics and statistics, in a panel."""
    console.print(Panel(Group(metrics_table(s, rules), "", statistics_group(s, rules)), title=title, expand=False))
