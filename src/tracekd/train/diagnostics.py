"""Training diagnostics: was the training loss still falling at the end of a run
(`loss_trend`, read by the report from each cell's train_summary.json)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

LOSS_TAIL = 0.25  # the last quarter of the logged steps
LOSS_FALLING = 0.05  # a fitted drop of more than 5 % of the tail's mean loss over the tail...
LOSS_ALPHA = 0.05  # ...and a slope below zero beyond batch-to-batch noise (one-sided p below this)


def loss_trend(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """Was the training loss still falling at the end? Take the logged training losses (entries
    with `loss` and `step`) in the last quarter of the steps and fit a least-squares line of loss on
    step (`scipy.stats.linregress`). The loss is still falling when the line drops by more than 5 %
    of the tail's mean loss across the tail **and** its slope is below zero beyond the scatter of
    the points (one-sided t test of the slope, p < 0.05). Each logged loss is the mean over other
    batches, so a tail of a few noisy points can slope either way while the model no longer
    changes; the test assumes the points scatter independently around the line. `relative_drop`
    and its 95 % interval `drop_ci95` say how large the fall is and how well it is known. Fewer
    than 3 logged points in the tail: unknown (`falling` None). `curve`: the logged (step, loss)
    points, for the report's loss plot."""
    pts = sorted(
        (float(e["step"]), float(e["loss"]))
        for e in log_history
        if isinstance(e, dict) and "loss" in e and "step" in e and math.isfinite(float(e["loss"]))
    )
    rule = (
        f"least-squares line through the logged training loss over the last {LOSS_TAIL:.0%} of steps; "
        f"falling when its drop across them exceeds {LOSS_FALLING:.0%} of their mean loss and its slope is "
        f"below zero beyond the points' scatter (one-sided t test, p < {LOSS_ALPHA:g})"
    )
    known = {"rule": rule, "curve": [[s, v] for s, v in pts]}
    last = pts[-1][0] if pts else 0.0
    tail = [(s, v) for s, v in pts if s >= last * (1 - LOSS_TAIL)]
    if len(tail) < 3:  # no points at all included
        return {
            "falling": None,
            "points": len(tail),
            "relative_drop": None,
            "drop_ci95": [None, None],
            "p": None,
            **known,
        }
    s, v = np.array(tail).T
    fit = stats.linregress(s, v, alternative="less")
    slope, se = float(fit.slope), float(fit.stderr)
    if not math.isfinite(se) or se == 0:  # the points lie on the line: no scatter to test against
        se, p = 0.0, float(slope >= 0)
    else:
        p = float(fit.pvalue)
    mean_loss = float(v.mean())
    scale = float(s[-1] - s[0]) / mean_loss if mean_loss > 0 else 0.0
    half = float(stats.t.ppf(0.975, len(tail) - 2)) * se
    drop = -slope * scale + 0.0  # + 0.0: no -0.0 in the JSON
    return {
        "falling": drop > LOSS_FALLING and p < LOSS_ALPHA,
        "points": len(tail),
        "relative_drop": drop,
        "drop_ci95": [-(slope + half) * scale, -(slope - half) * scale],
        "p": p,
        **known,
    }
