"""report.md and a self-contained report.html (images embedded, no external requests)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from tracekd.jsonio import write_text_atomic
from tracekd.report import plots
from tracekd.report.teacher import length_plot, length_table

STEPS = ("label", "evidence", "trace")


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


def _rate(r: dict[str, Any]) -> str:
    lo, hi = r["ci95"]
    ci = "" if lo is None else f" [{_pct(lo)}, {_pct(hi)}]"
    sd = f" ± {_pct(r['sd'])}" if r.get("n", 1) > 1 else ""
    return f"{_pct(r['mean'])}{sd}{ci}"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def _pairs(results) -> list[tuple[str, str]]:
    seen = []
    for g in results["groups"]:
        if (g["dataset"], g["model"]) not in seen:
            seen.append((g["dataset"], g["model"]))
    return seen


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    out = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out)


def tables(results: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The report's tables, shared by the Markdown and HTML renderings."""
    conds = results["conditions"]
    headline = (["dataset", "model", *conds], [
        [d, m, *[next((_rate(g["rates"]["answer_accuracy"]) for g in results["groups"]
                       if (g["dataset"], g["model"], g["condition"]) == (d, m, c)), "—") for c in conds]]
        for d, m in _pairs(results)])
    steps = (["dataset", "model", "condition", "n", "parse rate", "label", "evidence exact", "evidence F1", "full trace", "answer"], [
        [g["dataset"], g["model"], g["condition"], str(g["n"]), _pct(g["rates"]["parse_rate"]["mean"]),
         _pct(g["rates"]["label_accuracy"]["mean"]), _pct(g["rates"]["evidence_exact"]["mean"]),
         _pct(g["rates"]["evidence_f1"]["mean"]), _pct(g["rates"]["trace_accuracy"]["mean"]),
         _pct(g["rates"]["answer_accuracy"]["mean"])] for g in results["groups"]])
    assoc_rows = []
    for g in results["groups"]:
        for step in STEPS:
            a = g["association"][step]
            (x, y), (z, w) = a["table"]
            pc, pw = a["p_answer_given_step_correct"], a["p_answer_given_step_wrong"]
            assoc_rows.append([g["dataset"], g["model"], g["condition"], step, f"{x} / {y} / {z} / {w}",
                               _num(a["chi2"], ".2f"), _num(a["chi2_yates"], ".2f"), _num(a["fisher_p"]), _num(a["phi"], ".3f"),
                               _num(a["odds_ratio"], ".3g"), _pct(pc["p"]), _pct(pw["p"]), a["reading"]])
    assoc = (["dataset", "model", "condition", "step", "a / b / c / d", "χ²", "χ² (Yates)", "Fisher p", "φ", "odds ratio",
              "P(ans ✓ | step ✓) %", "P(ans ✓ | step ✗) %", "reading"], assoc_rows)
    subset_rows = []
    for d, m in _pairs(results):
        gs = [g for g in results["groups"] if (g["dataset"], g["model"]) == (d, m)]
        for sub in sorted({s for g in gs for s in g["by_subset"]}):
            subset_rows.append([d, m, sub, *[_pct(g["by_subset"].get(sub, {}).get("answer_accuracy")) for g in gs]])
    conds_present = [g["condition"] for g in results["groups"] if (g["dataset"], g["model"]) == _pairs(results)[0]]
    subsets = (["dataset", "model", "subset", *conds_present], subset_rows)
    return {"headline": headline, "steps": steps, "association": assoc, "subsets": subsets, "lengths": length_table(results)}


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    out = {"accuracy_by_condition.png": plots.accuracy_by_condition(results)}
    lengths = length_plot(results)
    if lengths is not None:
        out["accuracy_by_trace_length.png"] = lengths
    for d, m in _pairs(results):
        for name, png in ((f"heatmap_{d}_{m}.png", plots.heatmaps(results, d, m, "trace")),
                          (f"subsets_{d}_{m}.png", plots.by_subset(results, d, m))):
            if png is not None:
                out[name.replace("/", "_")] = png
    return out


def markdown(results: dict[str, Any], figs: dict[str, bytes]) -> str:
    t = tables(results)
    parts = [f"# {results['name']}", "",
             "Answer accuracy in %, mean ± sd over seeds [95 % interval: t over seeds, or Wilson for one seed].", "",
             "## Headline: answer accuracy", "", _md_table(*t["headline"]), "",
             "## Trace steps (%)", "", _md_table(*t["steps"]), "",
             "## Does a correct trace step go with a correct answer?", "",
             "2×2 tables pooled over seeds: a = step ✓ answer ✓, b = step ✓ answer ✗, c = step ✗ answer ✓, d = step ✗ answer ✗.", "",
             _md_table(*t["association"]), "", "## Per subset: answer accuracy (%)", "", _md_table(*t["subsets"]), "",
             *(["## Trace length (tokens, the student's tokenizer)", "", _md_table(*t["lengths"]), ""] if t["lengths"][1] else []),
             "## Plots", ""]
    parts += [f"![{name}](plots/{name})" for name in figs]
    return "\n".join(parts) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.ex{border:1px solid #ddd;border-radius:4px;padding:6px 10px;margin:6px 0;font-size:13px}
pre{white-space:pre-wrap;background:#f8f8f8;padding:4px;margin:2px 0}img{max-width:100%}
details>summary{cursor:pointer;font-weight:600;margin:6px 0}.muted{color:#777}
"""

_JS = """
function filt(sel){var mode=sel.value;var box=sel.parentNode;
box.querySelectorAll('.ex').forEach(function(e){var show=mode=='all'||(mode=='answer'&&e.dataset.answer=='0')||
(mode=='trace'&&e.dataset.trace=='0')||(mode=='disagree'&&e.dataset.answer!=e.dataset.trace);e.style.display=show?'':'none';});}
"""


def _html_table(header, rows) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _mark(ok: bool) -> str:
    return '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'


def _example(row: dict[str, Any]) -> str:
    e = html.escape
    gold, parsed = row.get("gold", {}), row["parsed"]
    matched = set(row["evidence"].get("matched", []))
    ev_pred = parsed["evidence"]
    ans_ok = bool(row["answer"]["correct"])
    pred_ev = "—" if ev_pred is None else "<br>".join(e(x) for x in ev_pred) or "(none)"
    return (
        f'<div class="ex" data-answer="{int(ans_ok)}" data-trace="{int(row["trace_correct"])}">'
        f'<div><b>{e(row["id"])}</b> <span class="muted">{e(row["subset"])}</span></div>'
        f'<div><b>Q:</b> {e(row.get("question", ""))}</div>'
        f'<table><tr><th></th><th>gold</th><th>predicted</th><th></th></tr>'
        f'<tr><td>label</td><td>{e(str(gold.get("label", row["label"])))}</td><td>{e(str(parsed["label"]))}</td><td>{_mark(row["label_correct"])}</td></tr>'
        f'<tr><td>evidence</td><td>{"<br>".join(e(x) for x in gold.get("evidence", []))}</td><td>{pred_ev}</td>'
        f'<td>{_mark(row["evidence"]["exact"])} <span class="muted">{len(matched)} matched</span></td></tr>'
        f'<tr><td>answer</td><td>{e(", ".join(gold.get("answers", [])))}</td><td>{e(", ".join(parsed["answers"] or []))}</td><td>{_mark(ans_ok)}</td></tr>'
        f'</table><details><summary class="muted">raw output</summary><pre>{e(row["output"])}</pre></details></div>'
    )


def _explorer(results: dict[str, Any], root: Path, limit: int) -> str:
    parts = []
    for g in results["groups"]:
        path = root / g["examples"][0]
        rows = []
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if len(rows) >= limit:
                        break
                    rows.append(json.loads(line))
        seed = g["seeds"][0]
        more = f" (first {limit} of {g['n']})" if g["n"] > limit else ""
        parts.append(
            f"<details><summary>{html.escape(g['dataset'])} / {html.escape(g['model'])} / {html.escape(g['condition'])} "
            f"— seed {seed}{more}</summary><div>show: <select onchange='filt(this)'><option value='all'>all</option>"
            f"<option value='answer'>wrong answers</option><option value='trace'>wrong traces</option>"
            f"<option value='disagree'>trace and answer disagree</option></select>"
            + "".join(_example(r) for r in rows) + "</div></details>")
    return "".join(parts)


def html_report(results: dict[str, Any], figs: dict[str, bytes], root: Path, limit: int) -> str:
    t = tables(results)
    imgs = "".join(f'<p><img alt="{html.escape(n)}" src="data:image/png;base64,{base64.b64encode(b).decode()}"></p>'
                   for n, b in figs.items())
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(results['name'])}</title>"
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>"
        f"<h1>{html.escape(results['name'])}</h1>"
        "<p class='muted'>Answer accuracy in %, mean ± sd over seeds [95 % interval: t over seeds, or Wilson for one seed].</p>"
        f"<h2>Headline: answer accuracy</h2>{_html_table(*t['headline'])}"
        f"<h2>Trace steps (%)</h2>{_html_table(*t['steps'])}"
        "<h2>Does a correct trace step go with a correct answer?</h2>"
        "<p class='muted'>2×2 tables pooled over seeds: a = step ✓ answer ✓, b = step ✓ answer ✗, c = step ✗ answer ✓, d = step ✗ answer ✗.</p>"
        f"{_html_table(*t['association'])}<h2>Per subset: answer accuracy (%)</h2>{_html_table(*t['subsets'])}"
        + (f"<h2>Trace length (tokens, the student's tokenizer)</h2>{_html_table(*t['lengths'])}" if t["lengths"][1] else "") +
        f"<h2>Plots</h2>{imgs}<h2>Examples</h2>{_explorer(results, root, limit)}"
        "</body></html>\n"
    )


def write_report(results: dict[str, Any], root: Path, limit: int | None = None) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into `root` (beside results.json)."""
    if limit is None:
        limit = results.get("config", {}).get("examples_in_report", 200)
    figs = figures(results)
    for name, png in figs.items():
        path = root / "plots" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        from tracekd.jsonio import atomic_open

        with atomic_open(path, "wb") as f:
            f.write(png)
    write_text_atomic(root / "report.md", markdown(results, figs))
    write_text_atomic(root / "report.html", html_report(results, figs, root, limit))
    return {"md": root / "report.md", "html": root / "report.html"}
