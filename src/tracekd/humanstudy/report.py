"""The analysis as a person reads it: findings in words, the plots (diverging stacked bars of the
Likert answers; verification accuracy against time) and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from tracekd.humanstudy.spec import AGREE, LIKERT_QUESTIONS, LOAD, LOW_HIGH
from tracekd.jsonio import write_json_atomic, write_text_atomic

ALPHA = 0.05
FEW_PARTICIPANTS = 30


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _ci(ci: list[float], fmt: str = ".2f") -> str:
    return f"[95 % CI {ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def findings(r: dict[str, Any]) -> list[str]:
    """One sentence per comparison, the test that supports it named, with its caveats."""
    out = []
    excluded = ", ".join(f"{e['excluded']} {e['name']}" for e in r["exclusions"]) or "no answers yet"
    out.append(f"{r['kept']} of {r['participants']} participants kept ({excluded}); {r.get('pages', 0)} item pages.")
    if "scales" not in r:
        return [*out, "Too few participants kept (fewer than 3) for any statistic."]
    if r["kept"] < FEW_PARTICIPANTS:
        out.append(f"Caveat: only {r['kept']} participants kept (fewer than {FEW_PARTICIPANTS}); intervals are wide.")
    for scale, block in r.get("scales", {}).items():
        means = ", ".join(f"{t} {s['mean']:.2f} {_ci(s['mean_ci'])}" for t, s in block["summary"].items())
        out.append(f"{scale.capitalize()} (1-5), mean per type: {means}.")
        mm = block.get("mixed_model")
        if mm:
            ordinal = block["ordinal_model"]["log_odds"]
            for t, e in mm["effects"].items():
                agrees = t in ordinal and (ordinal[t]["estimate"] > 0) == (e["difference"] > 0)
                check = (
                    "the ordinal model agrees in direction"
                    if agrees
                    else "the ordinal model does NOT agree in direction"
                )
                if e["p"] < ALPHA:
                    side = "higher" if e["difference"] > 0 else "lower"
                    if scale == "load":
                        side += f" ({'more' if e['difference'] > 0 else 'less'} load)"
                    verdict = f"{t} is rated {side} than {mm['reference']}"
                else:
                    verdict = f"no significant difference between {t} and {mm['reference']} (not evidence that they are equal)"
                out.append(
                    f"{scale.capitalize()} — {verdict}: difference {e['difference']:+.2f} {_ci(e['ci'])}, {_p(e['p'])} "
                    f"(linear mixed model, participant and item random intercepts); {check}."
                )
            rt = block["rank_tests"]
            if rt["p"] is not None:
                sig = [f"{x['a']} vs {x['b']} ({_p(x['p_holm'])})" for x in rt["pairs"] if x["p_holm"] < ALPHA]
                out.append(
                    f"{scale.capitalize()}: {rt['test']} over {rt['participants']} participants {_p(rt['p'])}; "
                    f"pairs differing after Holm correction ({rt['pair_test']}): {', '.join(sig) or 'none'}."
                )
        out.append(
            f"{scale.capitalize()} scale reliability: Cronbach's α = {block['cronbach_alpha']:.2f}; agreement between "
            f"raters on {block['krippendorff_item']}: Krippendorff's α (ordinal) = {block['krippendorff_alpha']:.2f}."
        )
    for t, v in r.get("verification", {}).items():
        hit = "n/a" if v["hit_rate"] is None else f"{100 * v['hit_rate']:.0f} %"
        fa = "n/a" if v["false_alarm_rate"] is None else f"{100 * v['false_alarm_rate']:.0f} %"
        named = "" if v["step_named"] is None else f", the wrong step named in {100 * v['step_named']:.0f} % of those"
        out.append(
            f"Verification — {t}: accuracy {100 * v['accuracy']:.0f} % {_ci([100 * x for x in v['accuracy_ci']], '.0f')}; "
            f"wrong steps spotted in {hit} of {v['wrong_pages']} wrong traces{named}; false alarms {fa}; "
            f"d′ = {v['d_prime']:.2f}; median {v['median_seconds']:.0f} s a page {_ci(v['median_seconds_ci'], '.0f')}."
        )
    return out


def plot_likert(r: dict[str, Any], path: Path) -> None:
    """Diverging stacked bars: per question and type, the share of each answer, centred on the
    middle answer (half of it on each side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = r["likert_counts"]
    qs = list(LIKERT_QUESTIONS)
    types = r["types"]
    colors = ["#b2182b", "#ef8a62", "#cccccc", "#67a9cf", "#2166ac"]
    fig, axes = plt.subplots(len(qs), 1, figsize=(9, 1.1 + 0.45 * len(types) * len(qs)), sharex=True)
    for ax, q in zip(axes, qs):
        for y, t in enumerate(types):
            c = counts[q][t]
            total = sum(c) or 1
            share = [x / total for x in c]
            left = -(share[0] + share[1] + share[2] / 2)
            for k in range(5):
                ax.barh(y, share[k], left=left, color=colors[k], edgecolor="white")
                left += share[k]
        ax.set_yticks(range(len(types)), types)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{q}: {LIKERT_QUESTIONS[q]}", fontsize=9, loc="left")
    labels = LOW_HIGH if qs[-1] in LOAD else AGREE
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors]
    fig.legend(
        handles,
        [f"{i + 1} {a} / {b}" for i, (a, b) in enumerate(zip(AGREE, labels))],
        loc="lower center",
        ncol=3,
        fontsize=7,
    )
    axes[-1].set_xlabel("share of answers (left: disagree / low, right: agree / high)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_verification(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for t, v in r["verification"].items():
        x, y = v["median_seconds"], 100 * v["accuracy"]
        xerr = [[x - v["median_seconds_ci"][0]], [v["median_seconds_ci"][1] - x]]
        yerr = [[y - 100 * v["accuracy_ci"][0]], [100 * v["accuracy_ci"][1] - y]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3, label=t)
        ax.annotate(t, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("median seconds per page (95 % CI, bootstrap over participants)")
    ax.set_ylabel("verification accuracy, % (95 % CI)")
    ax.set_title("Verifying a trace: accuracy against time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def write_report(r: dict[str, Any], out: Path) -> dict[str, Path]:
    """analysis.json, the plots and report.html (plots embedded) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    words = findings(r)
    r = {**r, "findings": words}
    paths = {"json": out / "analysis.json", "html": out / "report.html"}
    write_json_atomic(paths["json"], r)
    parts = [f"<h1>Human study: {html.escape(r['study'])}</h1>", "<h2>Findings</h2><ul>"]
    parts += [f"<li>{html.escape(w)}</li>" for w in words]
    parts.append("</ul><h2>Exclusions</h2>")
    parts.append(_table([[e["name"], e["rule"], e["excluded"]] for e in r["exclusions"]], ["rule", "what", "excluded"]))
    for scale, block in r.get("scales", {}).items():
        rows = [
            [
                t,
                s["participants"],
                s["pages"],
                f"{s['mean']:.2f}",
                _ci(s["mean_ci"]),
                f"{s['median']:.2f}",
                _ci(s["median_ci"]),
            ]
            for t, s in block["summary"].items()
        ]
        parts.append(f"<h2>{html.escape(scale.capitalize())}</h2>")
        parts.append(_table(rows, ["type", "participants", "pages", "mean", "", "median", ""]))
    if r.get("verification"):
        rows = [
            [t, f"{100 * v['accuracy']:.0f} %", f"{v['d_prime']:.2f}", f"{v['median_seconds']:.0f} s"]
            for t, v in r["verification"].items()
        ]
        parts.append("<h2>Verification</h2>" + _table(rows, ["type", "accuracy", "d′", "median time"]))
    if r.get("likert_counts"):
        paths["likert"] = out / "likert.png"
        paths["verification_plot"] = out / "verification.png"
        plot_likert(r, paths["likert"])
        plot_verification(r, paths["verification_plot"])
        for key in ("likert", "verification_plot"):
            data = base64.b64encode(paths[key].read_bytes()).decode()
            parts.append(f'<p><img alt="{key}" style="max-width:100%" src="data:image/png;base64,{data}"></p>')
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>human study</title>'
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem}table{border-collapse:collapse}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )
    write_text_atomic(paths["html"], page)
    return paths
