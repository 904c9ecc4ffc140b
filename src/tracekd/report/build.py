"""report.md and a self-contained report.html (images embedded, no external requests)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.jsonio import write_text_atomic
from tracekd.layout import PLOTS, REPORT_FILES, REPORT_HTML, REPORT_MD, RESULTS
from tracekd.report import plots
from tracekd.report.beside import beside_tables
from tracekd.report.interventions import EFFECTS_NOTE, effect_rows, intervention_findings, intervention_rows
from tracekd.report.interventions import NOTE as INTERVENTIONS_NOTE
from tracekd.report.summary import SUMMARY_NOTE, applies, not_judged, pairs, rate_columns, rates_row, summary
from tracekd.report.tables import (
    ASSOCIATION_NOTE,
    CELLS,
    association_rows,
    regression_note,
    regression_rows,
    strata_rows,
    strata_title,
    with_ci,
    without_rows,
)
from tracekd.report.teacher import length_table
from tracekd.score.metrics import pct
from tracekd.score.outputs import read_rows


def _rate(rate: dict[str, Any]) -> str:
    sd = f" (sd {pct(rate['sd'])})" if rate.get("sd") is not None else ""
    return with_ci(rate, "mean") + sd


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return "\n".join(out)


GROUP = ["dataset", "model", "condition"]


def _per_group(results: dict[str, Any], build) -> tuple[list[str], list[list[str]]] | None:
    """One table over all groups: the group's columns, then `build(group)`'s (header, rows)."""
    header, rows = None, []
    for group in results["groups"]:
        got = build(group)
        if got is None:
            continue
        header = GROUP + got[0]
        rows += [[group["dataset"], group["model"], group["condition"], *row] for row in got[1]]
    return None if header is None else (header, rows)


HEADLINE_NOTE = (
    "Pooled over seeds [95 % interval: bootstrap over test items, all seeds of an item together] "
    "(sd of the per-seed values); parsed: % of outputs in which an answer was found."
)
LENGTH_NOTE = (
    "Mean tokens per training target (what the condition teaches: trace and answer) and per output on the test split."
)
STRATA_NOTE = (
    "Each table's own statistics treat its outputs as independent; with several seeds the CMH columns "
    "stratify within it."
)


def _headline_cell(rates: dict[str, Any]) -> str:
    """An answer accuracy with its interval (and sd), and the parse rate beside it: an accuracy
    read from few parsed outputs is not the same number."""
    return f"{_rate(rates['answer_accuracy'])}; parsed {pct(rates['parse_rate']['mean'])}"


def _headline(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    conditions = results["conditions"]
    by_key = {(group["dataset"], group["model"], group["condition"]): group for group in results["groups"]}
    return ["dataset", "model", *conditions], [
        [
            dataset,
            model,
            *(
                _headline_cell(by_key[(dataset, model, condition)]["rates"])
                if (dataset, model, condition) in by_key
                else "—"
                for condition in conditions
            ),
        ]
        for dataset, model in pairs(results)
    ]


def _rates(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every metric of tracekd's definitions (the metric table), per group."""
    columns = rate_columns(results["groups"])
    header = [*GROUP, "seeds", "n", *(metric.column for metric in columns)]
    return header, [rates_row(group, columns) for group in results["groups"]]


def _subsets(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One column per condition (a pair without it, e.g. the teacher's own row, gets "—")."""
    rows, conditions = [], results["conditions"]
    for dataset, model in pairs(results):
        by_condition = {
            group["condition"]: group
            for group in results["groups"]
            if (group["dataset"], group["model"]) == (dataset, model)
        }
        for subset in sorted({name for group in by_condition.values() for name in group["by_subset"]}):
            rows.append(
                [
                    dataset,
                    model,
                    subset,
                    *[
                        pct(by_condition[condition]["by_subset"].get(subset, {}).get("answer_accuracy"))
                        if condition in by_condition
                        else "—"
                        for condition in conditions
                    ],
                ]
            )
    return ["dataset", "model", "subset", *conditions], rows


TRAINING_NOTE = (
    "Each trained cell's logged training loss; still falling: a least-squares line through the losses of "
    "the last quarter of the steps drops by more than 5 % of their mean and its slope is below zero beyond "
    "the points' scatter (one-sided t test, p < 0.05; the findings' caveat); not falling: no such fall "
    "(the interval says how large a fall the noise could hide)."
)


def _training(results: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    rows = []
    for group in results["groups"]:
        for seed, loss in (group.get("training") or {}).items():
            curve = loss.get("curve") or []
            trend = {True: "still falling", False: "not falling", None: "unknown"}[loss["falling"]]
            lo, hi = loss["drop_ci95"]
            drop = pct(loss["relative_drop"], " %") + (
                "" if lo is None else f" [{pct(lo)}, {pct(hi)}], p {loss['p']:.2g}"
            )
            rows.append(
                [
                    group["dataset"],
                    group["model"],
                    group["condition"],
                    str(seed),
                    f"{curve[-1][0]:g}" if curve else "—",
                    f"{curve[0][1]:.3f}" if curve else "—",
                    f"{curve[-1][1]:.3f}" if curve else "—",
                    drop,
                    trend,
                ]
            )
    header = [*GROUP, "seed", "steps", "first loss", "last loss", "fitted drop, last quarter [95 % CI], p", "loss"]
    return (header, rows) if rows else None


def tables(results: dict[str, Any]) -> dict[str, tuple[str, str, tuple[list[str], list[list[str]]]]]:
    """The report's tables as (title, note, (header, rows)), shared by the Markdown and HTML renderings."""
    groups = results["groups"]
    first = groups[0] if groups else None
    out: dict[str, Any] = {
        "headline": ("Headline: answer accuracy (%)", HEADLINE_NOTE, _headline(results)),
        "steps": (
            "Trace steps (%, tracekd definitions)",
            "Each rate [95 % bootstrap interval over test items].",
            _rates(results),
        ),
    }
    if results.get("comparisons"):
        out["comparisons"] = ("Paired comparisons of the conditions", COMPARISON_NOTE, _comparisons(results))
    if first is None:
        return out
    training = _training(results)
    if training is not None:
        out["training"] = ("Training loss", TRAINING_NOTE, training)
    definitions = f"Definitions: tracekd = {first['definitions']}; paper = {first['paper']['definitions']}."
    out["association"] = (
        "Does a right trace step go with a right answer?",
        f"{CELLS}. Strata: subset (one seed) or subset × seed. {ASSOCIATION_NOTE} {definitions}",
        _per_group(results, association_rows),
    )
    out["regression"] = (
        "Each step adjusted for the others",
        regression_note(first),
        _per_group(results, regression_rows),
    )
    for key in ("by_subset", "by_seed"):
        table = _per_group(results, lambda group, key=key: strata_rows(group, key))
        if table is not None:
            out[key] = (strata_title(key), STRATA_NOTE, table)
    for flag in sorted({name for group in groups for name in group.get("without_flagged", {})}):

        def without(group, flag=flag):
            tests = group.get("without_flagged", {}).get(flag)
            return None if tests is None else without_rows(tests)

        out[f"without_{flag}"] = (
            f"Without examples flagged {flag}",
            "The same tests on the outputs of unflagged examples.",
            _per_group(results, without),
        )
    out["subsets"] = ("Per subset: answer accuracy (%)", "", _subsets(results))
    table = _per_group(results, intervention_rows)
    if table is not None:
        out["interventions"] = ("Does the answer depend on the trace? Interventions", INTERVENTIONS_NOTE, table)
        effects = _per_group(results, effect_rows)
        if effects is not None:
            out["intervention_effects"] = ("Interventions: the effect of each trace step", EFFECTS_NOTE, effects)
    lengths = length_table(results)
    if lengths[1]:
        out["lengths"] = ("Trace length (tokens, the student's tokenizer)", LENGTH_NOTE, lengths)
    return out


FOREST_PREFIX = "forest_"


def forest_figures(results: dict[str, Any]) -> dict[str, bytes]:
    """The forest plot of each (dataset, model) with an estimable step (the summary shows them)."""
    out = {}
    for dataset, model in pairs(results):
        png = plots.forest(results, dataset, model)
        if png is not None:
            out[f"{FOREST_PREFIX}{dataset}_{model}.png".replace("/", "_")] = png
    return out


def _forests(figs: dict[str, bytes]) -> dict[str, bytes]:
    """The forest plots among the report's figures (drawn once, by `figures`)."""
    return {name: png for name, png in figs.items() if name.startswith(FOREST_PREFIX)}


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    out = {**forest_figures(results), "accuracy_by_condition.png": plots.accuracy_by_condition(results)}
    lengths = plots.accuracy_by_length(results)
    if lengths is not None:
        out["accuracy_by_trace_length.png"] = lengths
    for dataset, model in pairs(results):
        for name, png in (
            (f"heatmap_{dataset}_{model}.png", plots.heatmaps(results, dataset, model, "trace")),
            (f"subsets_{dataset}_{model}.png", plots.by_subset(results, dataset, model)),
            (f"loss_{dataset}_{model}.png", plots.loss_curves(results, dataset, model)),
            (f"interventions_{dataset}_{model}.png", plots.interventions(results, dataset, model)),
        ):
            if png is not None:
                out[name.replace("/", "_")] = png
    return out


def _findings(results: dict[str, Any]) -> list[str]:
    """The comparisons of the conditions (paired, on the same items) first, then the steps'
    findings where they apply (the groups where they do not are named once), then the interventions'."""
    steps = [f["text"] for g in results["groups"] for f in g.get("findings", []) if applies(g, f["definitions"])]
    return (
        [c["text"] for c in results.get("comparisons", [])]
        + steps
        + not_judged(results)
        + intervention_findings(results)
    )


COMPARISON_NOTE = (
    "Each pair of conditions on the items both have: accuracy with seeds averaged within an item, the difference "
    "with a 95 % paired bootstrap interval over items, and the exact sign test of the per-item differences "
    "(McNemar's exact test with one seed). A condition is called better only where both say so."
)


def _comparisons(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "model", "a", "b", "items", "a %", "b %", "a − b [95 % CI]", "a better / b better", "p"]
    rows = []
    for c in results["comparisons"]:
        lo, hi = c["ci95"]
        diff = "—" if c["difference"] is None else f"{100 * c['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        acc = [pct(x) for x in c["accuracy"]]
        p = "—" if c["p"] is None else f"{c['p']:.3g}"
        better = f"{c['a_better']} / {c['b_better']}"
        rows.append([c["dataset"], c["model"], c["a"], c["b"], str(c["items"]), *acc, diff, better, p])
    return header, rows


FOREST_TITLE = "Each trace step with the answer: stratified odds ratios"
FOREST_NOTE = (
    "Per step and condition (tracekd's definitions): the odds ratio of a right answer given a right step, stratified "
    "by subset (× seed), with its 95 % interval, on a log scale; right of 1: a right step goes with a right answer. "
    "Steps that are not estimable, or whose odds ratio is 0 or infinite (an empty cell), are left out."
)
TABLES_NOTE = "Every statistic, folded: open a table to read it."
NO_COMPARISONS = "no paired comparisons in this results.json (it was made before tracekd compared conditions)"


def _md_summary(results: dict[str, Any]) -> list[str]:
    parts = ["## Summary", "", SUMMARY_NOTE]
    for pair in summary(results):
        parts += ["", f"**{pair['title']}**", "", f"- Answer accuracy: {pair['accuracy']}."]
        parts += [f"- {line}." for line in pair["comparisons"]] or [f"- Paired comparisons: {NO_COMPARISONS}."]
        for step, lines in pair["steps"]:
            parts.append(f"- Step **{step}**: " + "; ".join(lines) + ".")
    for text in not_judged(results):
        parts += ["", text]
    return parts


def markdown(results: dict[str, Any], figs: dict[str, bytes]) -> str:
    parts = [f"# {results['name']}", "", *_md_summary(results)]
    forests = _forests(figs)
    if forests:
        parts += ["", f"## {FOREST_TITLE}", "", FOREST_NOTE, ""] + [f"![{name}](plots/{name})" for name in forests]
    for title, note, table in beside_tables(results["beside"]) if results.get("beside") else []:
        parts += ["", f"## {title}", "", note, "", _md_table(*table)]
    parts += ["", "## Findings", ""]
    parts += [f"- {text}" for text in _findings(results)] or ["(none)"]
    parts += ["", "## Full tables", "", TABLES_NOTE]
    for title, note, table in tables(results).values():
        parts += ["", "<details>", f"<summary>{html.escape(title)}</summary>", ""]
        parts += ([note, ""] if note else []) + [_md_table(*table), "", "</details>"]
    parts += ["", "## Plots", ""]
    parts += [f"![{name}](plots/{name})" for name in figs if name not in forests]
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
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _mark(ok: bool) -> str:
    return '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'


def _example(row: dict[str, Any]) -> str:
    escape = html.escape
    gold, parsed = row.get("gold", {}), row["parsed"]
    matched = set(row["evidence"].get("matched", []))
    ev_pred = parsed["evidence"]
    ans_ok = bool(row["answer"]["correct"])
    pred_ev = "—" if ev_pred is None else "<br>".join(escape(item) for item in ev_pred) or "(none)"
    return (
        f'<div class="ex" data-answer="{int(ans_ok)}" data-trace="{int(row["trace_correct"])}">'
        f'<div><b>{escape(row["id"])}</b> <span class="muted">{escape(row["subset"])}</span></div>'
        f"<div><b>Q:</b> {escape(row.get('question', ''))}</div>"
        f"<table><tr><th></th><th>gold</th><th>predicted</th><th></th></tr>"
        f"<tr><td>label</td><td>{escape(str(gold.get('label', row['label'])))}</td><td>{escape(str(parsed['label']))}</td><td>{_mark(row['label_correct'])}</td></tr>"
        f"<tr><td>evidence</td><td>{'<br>'.join(escape(item) for item in gold.get('evidence', []))}</td><td>{pred_ev}</td>"
        f'<td>{_mark(row["evidence"]["exact"])} <span class="muted">{len(matched)} matched</span></td></tr>'
        f"<tr><td>answer</td><td>{escape(', '.join(gold.get('answers', [])))}</td><td>{escape(', '.join(parsed['answers'] or []))}</td><td>{_mark(ans_ok)}</td></tr>"
        f'</table><details><summary class="muted">raw output</summary><pre>{escape(row["output"])}</pre></details></div>'
    )


def _explorer(results: dict[str, Any], root: Path, limit: int) -> str:
    parts = []
    for group in results["groups"]:
        path = root / group["examples"][0]
        rows = read_rows(path, limit) if path.is_file() else []
        seed = group["seeds"][0]
        more = f" (first {limit} of {group['n']})" if group["n"] > limit else ""
        parts.append(
            f"<details><summary>{html.escape(group['dataset'])} / {html.escape(group['model'])} / "
            f"{html.escape(group['condition'])} "
            f"— seed {seed}{more}</summary><div>show: <select onchange='filt(this)'><option value='all'>all</option>"
            f"<option value='answer'>wrong answers</option><option value='trace'>wrong traces</option>"
            f"<option value='disagree'>trace and answer disagree</option></select>"
            + "".join(_example(row) for row in rows)
            + "</div></details>"
        )
    return "".join(parts)


def _img(name: str, png: bytes) -> str:
    return f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def _items(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def _html_summary(results: dict[str, Any]) -> str:
    escape = html.escape
    parts = [f"<section id='summary'><h2>Summary</h2><p class='muted'>{escape(SUMMARY_NOTE)}</p>"]
    for pair in summary(results):
        lines = [f"Answer accuracy: {escape(pair['accuracy'])}."]
        lines += [f"{escape(line)}." for line in pair["comparisons"]] or [f"Paired comparisons: {NO_COMPARISONS}."]
        lines += [f"Step <b>{escape(step)}</b>: " + escape("; ".join(ls)) + "." for step, ls in pair["steps"]]
        parts.append(f"<h3>{escape(pair['title'])}</h3>{_items(lines)}")
    parts += [f"<p>{escape(text)}</p>" for text in not_judged(results)]
    return "".join(parts) + "</section>"


def html_report(results: dict[str, Any], figs: dict[str, bytes], root: Path, limit: int) -> str:
    forests = _forests(figs)
    forest = (
        f"<h2>{FOREST_TITLE}</h2><p class='muted'>{html.escape(FOREST_NOTE)}</p>"
        + "".join(_img(name, png) for name, png in forests.items())
        if forests
        else ""
    )
    findings = _items([html.escape(text) for text in _findings(results)] or ["(none)"])
    beside = "".join(
        f"<h2>{html.escape(title)}</h2><p class='muted'>{html.escape(note)}</p>{_html_table(*table)}"
        for title, note, table in (beside_tables(results["beside"]) if results.get("beside") else [])
    )
    body = "".join(
        f"<details><summary>{html.escape(title)}</summary>"
        + (f"<p class='muted'>{html.escape(note)}</p>" if note else "")
        + _html_table(*table)
        + "</details>"
        for title, note, table in tables(results).values()
    )
    imgs = "".join(_img(name, png) for name, png in figs.items() if name not in forests)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(results['name'])}</title>"
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>"
        f"<h1>{html.escape(results['name'])}</h1>{_html_summary(results)}{forest}{beside}<h2>Findings</h2>{findings}"
        f"<h2>Full tables</h2><p class='muted'>{TABLES_NOTE}</p>{body}"
        f"<h2>Plots</h2>{imgs}<h2>Examples</h2>{_explorer(results, root, limit)}"
        "</body></html>\n"
    )


def write_report(results: dict[str, Any], root: Path, limit: int | None = None) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into `root` (beside results.json)."""
    if limit is None:
        limit = results.get("config", {}).get("examples_in_report", 200)
    plots_dir = root / PLOTS
    if plots_dir.is_symlink() or (plots_dir.exists() and not plots_dir.resolve().is_relative_to(root.resolve())):
        raise InputError("is a link; the report writes its plots only inside its folder (remove the link)", plots_dir)
    figs = figures(results)
    for name, png in figs.items():
        path = root / PLOTS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        from tracekd.jsonio import atomic_open

        with atomic_open(path, "wb") as file:
            file.write(png)
    write_text_atomic(root / REPORT_MD, markdown(results, figs))
    write_text_atomic(root / REPORT_HTML, html_report(results, figs, root, limit))
    return {"md": root / REPORT_MD, "html": root / REPORT_HTML}


def rebuild_report(folder: Path, results: dict[str, Any], beside: Path | None = None) -> dict[str, Path]:
    """`tracekd report`: the folder locked, the temporary files a killed report left removed, then
    `write_report`. `beside`: a folder with another results.json, set side by side with this one
    on the same test items (`report.beside`) and kept in this results.json."""
    from tracekd.jsonio import remove_stale_temps, write_json_atomic
    from tracekd.lock import folder_lock
    from tracekd.report.beside import side_by_side
    from tracekd.report.outputs import check_results, read_results

    with folder_lock(folder, "tracekd report"):
        remove_stale_temps(folder, REPORT_FILES)
        if not (folder / PLOTS).is_symlink():
            remove_stale_temps(folder / PLOTS)
        if beside is not None:
            other = beside / RESULTS
            if not other.is_file():
                raise InputError("no results.json in the folder given to --beside", beside)
            results = {**results, "beside": side_by_side(results, folder, read_results(other), beside)}
            check_results(results, folder / RESULTS)
            write_json_atomic(folder / RESULTS, results)
        return write_report(results, folder)
