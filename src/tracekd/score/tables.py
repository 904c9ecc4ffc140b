"""Terminal tables (rich) for evaluate and rescore."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def metrics_table(s: dict[str, Any], published: dict[str, Any] | None = None) -> Table:
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
    if "upstream" in a:
        up = a["upstream"]
        for key in ("acc", "f1"):
            pub = published.get(key) if published else None
            diff = f" ({100 * up[key] - pub:+.1f})" if pub is not None else ""
            row(f"answer {key} (upstream scorer)", _pct(up[key]) + diff, "" if pub is None else f"{pub:.1f}")
    st = s["steps"]
    ev = st["evidence"]
    row("label accuracy", _pct(st["label_accuracy"]))
    row("evidence P / R / F1", f"{_pct(ev['precision'])} / {_pct(ev['recall'])} / {_pct(ev['f1'])}")
    row("evidence exact set (tolerant)", f"{_pct(ev['exact'])} ({_pct(st['evidence_tolerant']['exact'])})")
    row("full trace accuracy", _pct(st["trace_accuracy"]))
    p = s["paper"]
    row("paper: label / fact / trace acc", f"{_pct(p['label_accuracy'])} / {_pct(p['evidence_accuracy'])} / {_pct(p['trace_accuracy'])}")
    row("outputs ok / empty / unparsable", f"{s['status']['ok']} / {s['status']['empty']} / {s['status']['unparsable']}")
    return t


def association_table(s: dict[str, Any]) -> Table:
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False,
              caption="a: step right, answer right · b: step right, answer wrong · c: step wrong, answer right · d: both wrong")
    for col in ("step", "a", "b", "c", "d", "χ²", "χ² Yates", "Fisher p", "φ", "P(ans✓|✓)", "P(ans✓|✗)"):
        t.add_column(col, justify="right" if col != "step" else "left", no_wrap=True)
    for step, a in s["association"].items():
        (x, y), (z, w) = a["table"]
        t.add_row(step, str(x), str(y), str(z), str(w), _num(a["chi2"], ".2f"), _num(a["chi2_yates"], ".2f"),
                  _num(a["fisher_p"]), _num(a["phi"], ".3f"),
                  _pct(a["p_answer_given_step_correct"]["p"]), _pct(a["p_answer_given_step_wrong"]["p"]))
    return t


def print_summary(console: Console, title: str, s: dict[str, Any], published: dict[str, Any] | None = None) -> None:
    console.print(Panel(Group(metrics_table(s, published), "", association_table(s)), title=title, expand=False))


def print_rescore(console: Console, results: dict[str, Any]) -> None:
    for path, r in results["files"].items():
        title = f"{path.rsplit('/', 2)[-2] if '/' in path else ''}/{path.rsplit('/', 1)[-1]}  [{r['condition']}, n={r['summary']['n']}]"
        print_summary(console, title, r["summary"], r["published"])
    t = Table(title="by condition (all files pooled; accuracies in %)", header_style="bold")
    for col in ("condition", "files", "n", "answer", "upstream", "label", "evidence", "trace", "φ label", "φ evid.", "φ trace"):
        t.add_column(col, justify="right" if col != "condition" else "left", no_wrap=True)
    for cond, r in results["by_condition"].items():
        s = r["summary"]
        up = s["answer"].get("upstream", {}).get("acc")
        t.add_row(cond, str(r["files"]), str(r["unique_examples"]), _pct(s["answer"]["accuracy"]), _pct(up),
                  _pct(s["steps"]["label_accuracy"]), _pct(s["steps"]["evidence"]["exact"]), _pct(s["steps"]["trace_accuracy"]),
                  *(_num(s["association"][k]["phi"], ".3f") for k in ("label", "evidence", "trace")))
    console.print(t)
