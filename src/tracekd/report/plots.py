"""Plots (matplotlib, Agg backend): accuracy by condition, 2x2 heatmaps, per-subset breakdown,
training-loss curves."""

from __future__ import annotations

import io
from typing import Any

from tracekd.report.summary import has_trace, step_test
from tracekd.score.metrics import step_metric


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "figure.dpi": 110, "svg.hashsalt": "tracekd"})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def accuracy_by_condition(results: dict[str, Any]) -> bytes:
    plt = _plt()
    conds = results["conditions"]
    series: dict[str, dict[str, Any]] = {}
    for g in results["groups"]:
        series.setdefault(f"{g['dataset']} / {g['model']}", {})[g["condition"]] = g["rates"]["answer_accuracy"]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(conds) * max(1, len(series)) ** 0.5), 3.2))
    width = 0.8 / max(1, len(series))
    for i, (name, by_cond) in enumerate(series.items()):
        xs, ys, lo, hi = [], [], [], []
        for j, c in enumerate(conds):
            if c in by_cond:
                r = by_cond[c]
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(100 * r["mean"])
                ci = r["ci95"]
                lo.append(100 * (r["mean"] - ci[0]) if ci[0] is not None else 0)
                hi.append(100 * (ci[1] - r["mean"]) if ci[1] is not None else 0)
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=name)
    ax.set_xticks(range(len(conds)), conds)
    ax.set_ylabel("answer accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Answer accuracy by training condition (95 % CI)")
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def heatmaps(results: dict[str, Any], dataset: str, model: str, step: str = "trace") -> bytes | None:
    plt = _plt()
    groups = [
        g
        for g in results["groups"]
        if g["dataset"] == dataset and g["model"] == model and has_trace(g)  # a group with no trace: no heatmap
    ]
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(2.3 * len(groups) + 0.8, 2.8), squeeze=False, sharey=True)
    for k, (ax, g) in enumerate(zip(axes[0], groups)):
        (a, b), (c, d) = g["association"][step]["table"]
        top = max(a, b, c, d, 1)
        ax.imshow([[a, b], [c, d]], cmap="Blues", vmin=0, vmax=top)
        for (i, j), v in {(0, 0): a, (0, 1): b, (1, 0): c, (1, 1): d}.items():
            ax.text(j, i, str(v), ha="center", va="center", fontsize=10, color="white" if v > top / 2 else "black")
        ax.set_xticks([0, 1], ["answer ✓", "answer ✗"])
        ax.set_yticks([0, 1], [f"{step} ✓", f"{step} ✗"])
        ax.tick_params(axis="y", labelleft=k == 0)
        st = g["association"][step]["stratified"]
        verdict = "not estimable" if st["p"] is None else f"CMH p = {st['p']:.2g}"
        ax.set_title(f"{g['condition']}  ({verdict})", fontsize=8)
    fig.suptitle(f"{dataset} / {model}: {step_metric(step).title} vs answer", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig)


def by_subset(results: dict[str, Any], dataset: str, model: str) -> bytes | None:
    plt = _plt()
    groups = [g for g in results["groups"] if g["dataset"] == dataset and g["model"] == model]
    subsets = sorted({s for g in groups for s in g["by_subset"]})
    if len(subsets) < 2:
        return None
    fig, ax = plt.subplots(figsize=(max(4.5, 0.7 * len(subsets) * max(1, len(groups)) ** 0.5), 3.0))
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        xs = [k + (i - (len(groups) - 1) / 2) * width for k in range(len(subsets))]
        ax.bar(
            xs,
            [100 * g["by_subset"].get(s, {}).get("answer_accuracy", 0) for s in subsets],
            width=width,
            label=g["condition"],
        )
    ax.set_xticks(range(len(subsets)), subsets, rotation=30 if len(subsets) > 6 else 0)
    ax.set_ylabel("answer accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{dataset} / {model}: answer accuracy per subset")
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def loss_curves(results: dict[str, Any], dataset: str, model: str) -> bytes | None:
    """Each trained cell's logged training loss against the optimiser step; the last quarter of the
    steps (where `train.diagnostics.loss_trend` looks) shaded, a cell whose loss was still falling there flagged."""
    plt = _plt()
    curves = [
        (f"{g['condition']} seed {seed}", t)
        for g in results["groups"]
        if g["dataset"] == dataset and g["model"] == model
        for seed, t in (g.get("training") or {}).items()
        if t.get("curve")
    ]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, t in curves:
        steps, losses = zip(*t["curve"])
        flag = {True: " — still falling", None: " — trend unknown"}.get(t["falling"], "")
        ax.plot(steps, losses, marker=".", markersize=3, linewidth=1, label=name + flag)
        ax.axvspan(steps[-1] * 0.75, steps[-1], color="0.92", zorder=0)
    ax.set_xlabel("optimiser step (shaded: the last quarter, where the trend is fitted)")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title(f"{dataset} / {model}: training loss")
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def accuracy_by_length(results: dict[str, Any]) -> bytes | None:
    """Answer accuracy against trace length: training targets (left) and outputs (right), one
    point per (dataset, model, condition)."""
    points = [(g, g.get("lengths") or {}) for g in results["groups"]]
    if not any(v.get(k) is not None for _, v in points for k in ("target_tokens", "output_tokens")):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, key, title in zip(axes, ("target_tokens", "output_tokens"), ("training target", "model output")):
        for g, lengths in points:
            if lengths.get(key) is None:
                continue
            y = 100 * g["rates"]["answer_accuracy"]["mean"]
            ax.scatter(lengths[key], y, s=18)
            ax.annotate(g["condition"], (lengths[key], y), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"{title} length (tokens, log scale)")
        ax.set_title(f"answer accuracy vs {title} length", fontsize=8)
    axes[0].set_ylabel("answer accuracy (%)")
    axes[0].set_ylim(0, 100)
    fig.tight_layout()
    return _png(fig)


def interventions(results: dict[str, Any], dataset: str, model: str) -> bytes | None:
    """Answer accuracy under each intervention, one bar per condition (95 % CI); the early-answering
    curves (agreement with the final answer against the share of the trace kept) beside it."""
    groups = [
        g
        for g in results["groups"]
        if g["dataset"] == dataset and g["model"] == model and g.get("interventions") is not None
    ]
    if not groups:
        return None
    plt = _plt()
    names = list(dict.fromkeys(n for g in groups for n in g["interventions"]["interventions"]))
    fig, (ax, curve) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        ivs = g["interventions"]["interventions"]
        xs = [j + (i - (len(groups) - 1) / 2) * width for j, n in enumerate(names) if n in ivs]
        acc = [ivs[n]["accuracy"] for n in names if n in ivs]
        ys = [100 * a["p"] for a in acc]
        err = [[100 * (a["p"] - a["ci95"][0]) for a in acc], [100 * (a["ci95"][1] - a["p"]) for a in acc]]
        ax.bar(xs, ys, width=width, yerr=err, capsize=2, label=g["condition"])
        early = g["interventions"]["early_answering"]
        if early:
            pts = early["points"]
            curve.plot(
                [p["fraction"] for p in pts], [100 * p["agreement"]["p"] for p in pts], marker="o", label=g["condition"]
            )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("answer accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{dataset} / {model}: accuracy under each intervention (95 % CI)")
    ax.legend(fontsize=7, frameon=False)
    curve.set_xlabel("share of the model's own trace kept")
    curve.set_ylabel("same answer as the full trace (%)")
    curve.set_ylim(0, 105)
    curve.set_title("early answering")
    if curve.lines:
        curve.legend(fontsize=7, frameon=False)
    else:
        curve.text(0.5, 0.5, "no truncation run", ha="center", va="center", transform=curve.transAxes)
    return _png(fig)


def forest(results: dict[str, Any], dataset: str, model: str) -> bytes | None:
    """The stratified odds ratio of a right answer given a right step [95 % CI], per step and
    condition (tracekd's definitions; the test each verdict rests on: CMH or the exact conditional
    test), on a log scale with 1 (no association) marked; only the estimable ones."""
    rows = []
    for g in results["groups"]:
        if (g["dataset"], g["model"]) != (dataset, model):
            continue
        for step, block in g["association"].items():
            _, test = step_test(block)
            odds, ci = test.get("odds_ratio"), test.get("odds_ratio_ci95") or [None, None]
            if block["stratified"]["estimable"] and odds is not None and 0 < odds < float("inf"):
                rows.append((step, g["condition"], odds, ci))
    if not rows:
        return None
    plt = _plt()
    steps = list(dict.fromkeys(r[0] for r in rows))
    conditions = list(dict.fromkeys(r[1] for r in rows))
    colours = {c: f"C{i}" for i, c in enumerate(conditions)}
    finite = [x for _, _, odds, ci in rows for x in (odds, *ci) if x is not None and 0 < x < float("inf")]
    low, high = min([*finite, 1.0]) / 1.5, max([*finite, 1.0]) * 1.5
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.28 * len(rows) + 0.25 * len(steps)))
    y, ticks = 0.0, []
    for step in steps:
        for _, condition, odds, (lo, hi) in (r for r in rows if r[0] == step):
            lo = low if lo is None or lo <= 0 else lo
            hi = high if hi is None or hi == float("inf") else hi
            ax.errorbar(
                odds, -y, xerr=[[odds - lo], [hi - odds]], fmt="o", color=colours[condition], capsize=2, markersize=4
            )
            ticks.append((-y, f"{step} — {condition}"))
            y += 1
        y += 0.6
    ax.axvline(1.0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_yticks([t for t, _ in ticks], [label for _, label in ticks], fontsize=7)
    ax.set_xlabel("odds ratio of a right answer given a right step (log scale; 1: no association)")
    ax.set_title(f"{dataset} / {model}: each step with the answer, stratified [95 % CI]", fontsize=9)
    return _png(fig)
