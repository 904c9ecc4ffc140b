"""Terminal tables (rich) for evaluate and rescore."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

#: the steps an evidence rule changes (the others are judged the same under every rule)
RULE_STEPS = ("evidence", "trace")
UPSTREAM_KEYS = ("acc", "f1", "p", "r", "avg")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def _named(step: str, rule: str | None) -> str:
    return step if rule is None else f"{step} ({rule} rule)"


def metrics_table(s: dict[str, Any], published: dict[str, Any] | None = None,
                  upstream: dict[str, float] | None = None, rules: dict[str, Any] | None = None) -> Table:
    """`upstream`: the original scorer's totals for a file (compared with `published`); `rules`:
    the steps under each evidence rule, by rule name."""
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    if published:
        t.add_column("published", justify="right")

    def row(name: str, value: str, pub: str = "") -> None:
        t.add_row(name, value, pub) if published else t.add_row(name, value)

    a = s["answer"]
    row("answer accuracy (tracekd, strict)", _pct(a["accuracy"]))
    for key in ("f1", "token_f1", "rouge_l", "bleu_1"):
        if key in a:
            row(f"answer {key}", _pct(a[key]))
    if upstream:
        for key in UPSTREAM_KEYS:
            pub = published.get(key) if published else None
            diff = f" ({upstream[key] - pub:+.1f})" if pub is not None else ""
            row(f"answer {key} (upstream scorer)", f"{upstream[key]:.1f}{diff}", "" if pub is None else f"{pub:.1f}")
    elif "upstream" in a:
        row("answer acc / f1 (upstream scorer)", f"{_pct(a['upstream']['acc'])} / {_pct(a['upstream']['f1'])}")
    st = s["steps"]
    row("label accuracy", _pct(st["label_accuracy"]))
    row("anchor fact(s) retrieved", _pct(st.get("anchor_accuracy")))
    row("answer-bearing fact(s) retrieved", _pct(st.get("answer_fact_accuracy")))
    for rule, view in (rules or {None: {"steps": st}}).items():
        ev, tol = view["steps"]["evidence"], view["steps"]["evidence_tolerant"]
        row(_named("evidence P / R / F1", rule), f"{_pct(ev['precision'])} / {_pct(ev['recall'])} / {_pct(ev['f1'])}")
        row(_named("evidence exact set (tolerant)", rule), f"{_pct(ev['exact'])} ({_pct(tol['exact'])})")
        row(_named("full trace accuracy", rule), _pct(view["steps"]["trace_accuracy"]))
    p = s["paper"]
    row("paper: label / fact / trace acc", f"{_pct(p['label_accuracy'])} / {_pct(p['evidence_accuracy'])} / {_pct(p['trace_accuracy'])}")
    row("outputs ok / empty / unparsable", f"{s['status']['ok']} / {s['status']['empty']} / {s['status']['unparsable']}")
    if s.get("flags"):
        row("examples flagged", ", ".join(f"{k} {v}" for k, v in s["flags"].items()))
    return t


def association_table(s: dict[str, Any], rules: dict[str, Any] | None = None) -> Table:
    """One row per step; with `rules`, the steps an evidence rule changes once per rule, named."""
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False,
              caption="a: step right, answer right · b: step right, answer wrong · c: step wrong, answer right · d: both wrong"
                      " · steps that do not apply to an example leave it out")
    for col in ("step", "a", "b", "c", "d", "χ²", "χ² Yates", "Fisher p", "φ", "P(ans✓|✓)", "P(ans✓|✗)"):
        t.add_column(col, justify="right" if col != "step" else "left", no_wrap=True)
    rows = []
    for step, a in s["association"].items():
        if rules and step in RULE_STEPS:
            rows += [(_named(step, rule), view["association"][step]) for rule, view in rules.items()]
        else:
            rows.append((step, a))
    for name, a in rows:
        (x, y), (z, w) = a["table"]
        t.add_row(name, str(x), str(y), str(z), str(w), _num(a["chi2"], ".2f"), _num(a["chi2_yates"], ".2f"),
                  _num(a["fisher_p"]), _num(a["phi"], ".3f"),
                  _pct(a["p_answer_given_step_correct"]["p"]), _pct(a["p_answer_given_step_wrong"]["p"]))
    return t


def print_summary(console: Console, title: str, s: dict[str, Any], published: dict[str, Any] | None = None,
                  upstream: dict[str, float] | None = None, rules: dict[str, Any] | None = None) -> None:
    console.print(Panel(Group(metrics_table(s, published, upstream, rules), "", association_table(s, rules)),
                        title=title, expand=False))


def print_rescore(console: Console, results: dict[str, Any]) -> None:
    """Per file and per condition, every step, the evidence steps under each rule side by side
    (the primary rule - the one the models were trained to cite - first)."""
    for path, r in results["files"].items():
        title = f"{path.rsplit('/', 2)[-2] if '/' in path else ''}/{path.rsplit('/', 1)[-1]}  [{r['condition']}, n={r['summary']['n']}]"
        print_summary(console, title, r["summary"], r["published"], r.get("upstream"), r.get("evidence_rules"))
    rules = results.get("evidence_rules") or [None]
    t = Table(title="by condition (all files pooled; accuracies in %)", header_style="bold")
    cols = ["condition", "files", "n", "answer", "upstream", "label", "anchor", "answer\nfact"]
    cols += [_named(step, rule).replace(" (", "\n(") for rule in rules for step in RULE_STEPS]
    for col in cols:
        t.add_column(col, justify="right" if col != "condition" else "left", no_wrap=col == "condition")
    for cond, r in results["by_condition"].items():
        s = r["summary"]
        views = r.get("evidence_rules") or {None: {"steps": s["steps"]}}
        t.add_row(cond, str(r["files"]), str(r["unique_examples"]), _pct(s["answer"]["accuracy"]),
                  _pct(s["answer"].get("upstream", {}).get("acc")), _pct(s["steps"]["label_accuracy"]),
                  _pct(s["steps"].get("anchor_accuracy")), _pct(s["steps"].get("answer_fact_accuracy")),
                  *(_pct(views[rule]["steps"]["evidence"]["exact"] if step == "evidence" else views[rule]["steps"]["trace_accuracy"])
                    for rule in rules for step in RULE_STEPS))
    console.print(t)
    for cond, r in results["by_condition"].items():
        console.print(Panel(association_table(r["summary"], r.get("evidence_rules")),
                            title=f"{cond}: step × answer, all files pooled", expand=False))
