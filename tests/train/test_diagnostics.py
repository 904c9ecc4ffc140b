"""The training-loss rule (train/diagnostics.py, `loss_trend`): exact values on lines, the
threshold at its edge, and the slope tested against the points' scatter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracekd.train import diagnostics
from tracekd.train.diagnostics import loss_trend


def test_loss_trend_rule():
    falling = [{"step": s, "loss": 2.0 - 0.01 * s} for s in range(10, 101, 10)]  # last quarter: 1.2 -> 1.0
    t = loss_trend([*falling, {"step": 100, "train_loss": 1.5}])
    assert t["falling"] is True and t["points"] == 3 and t["relative_drop"] == pytest.approx(0.2 / 1.1)
    flat = [{"step": s, "loss": 1.0 + 0.01 * (-1) ** s} for s in range(1, 101)]
    assert loss_trend(flat)["falling"] is False
    assert loss_trend([{"step": 1, "loss": 3.0}, {"step": 2, "loss": 1.0}])["falling"] is None
    assert loss_trend([])["falling"] is None


RULE = (
    "least-squares line through the logged training loss over the last 25% of steps; "
    "falling when its drop across them exceeds 5% of their mean loss and its slope is "
    "below zero beyond the points' scatter (one-sided t test, p < 0.05)"
)
NONE = {"relative_drop": None, "drop_ci95": [None, None], "p": None}


def test_loss_trend_values(monkeypatch):
    assert loss_trend([]) == {"falling": None, "points": 0, **NONE, "rule": RULE, "curve": []}
    # the curve: every logged (step, loss), in step order; only the last quarter is fitted
    assert loss_trend([{"step": 100, "loss": 0.5}, {"step": 10, "loss": 1.0}, {"epoch": 1}]) == {
        "falling": None,
        "points": 1,
        **NONE,
        "rule": RULE,
        "curve": [[10.0, 1.0], [100.0, 0.5]],
    }
    # steps 75..100 are the last quarter of 100 (75 included): 3 points on a line falling 0.01 per
    # step, a drop of 0.25 over the 25 steps, relative to their mean loss (0.85 + 0.70 + 0.60) / 3
    log = [{"step": s, "loss": v} for s, v in ((50, 2.0), (74, 2.0), (75, 0.85), (90, 0.7), (100, 0.6))]
    t = loss_trend(log)
    assert t["points"] == 3 and t["falling"] is True and t["rule"] == RULE and len(t["curve"]) == 5
    assert t["relative_drop"] == pytest.approx(0.25 / (2.15 / 3), rel=1e-9)
    # small losses (mean below 1) still have a relative drop
    small = loss_trend([{"step": s, "loss": 0.5 - 0.01 * (s - 80)} for s in (80, 90, 100)])
    assert small["falling"] is True and small["relative_drop"] == pytest.approx(0.2 / 0.4, rel=1e-9)
    # "more than 5 %": a drop of exactly the threshold is not falling, one just above it is
    monkeypatch.setattr(diagnostics, "LOSS_FALLING", t["relative_drop"])
    assert loss_trend(log)["falling"] is False
    monkeypatch.setattr(diagnostics, "LOSS_FALLING", math.nextafter(t["relative_drop"], 0))
    assert loss_trend(log)["falling"] is True
    monkeypatch.undo()
    # a loss of zero: no relative drop, not falling
    zero = loss_trend([{"step": s, "loss": 0.0} for s in (80, 90, 100)])
    assert zero == {
        "falling": False,
        "points": 3,
        "relative_drop": 0.0,
        "drop_ci95": [0.0, 0.0],
        "p": 1.0,
        "rule": RULE,
        "curve": [[80.0, 0.0], [90.0, 0.0], [100.0, 0.0]],
    }
    assert math.copysign(1, zero["relative_drop"]) == 1  # not -0.0


def test_loss_trend_tests_the_slope_against_the_scatter():
    """A tail whose fitted drop is over 5 % only by batch-to-batch scatter is not falling; the same
    scatter around a real fall is. Values by hand: slope, its standard error and the t interval."""
    from scipy import stats as sps

    steps = [30, 32, 34, 36, 38, 40]
    noisy = [0.35, 0.309, 0.424, 0.412, 0.288, 0.33]  # a demo cell's tail (lr 2e-3)
    t = loss_trend([{"step": 2, "loss": 4.0}, *({"step": s, "loss": v} for s, v in zip(steps, noisy))])
    x, y = np.array(steps, float), np.array(noisy)
    sxx = ((x - x.mean()) ** 2).sum()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / sxx
    resid = y - (y.mean() + slope * (x - x.mean()))
    se = math.sqrt((resid**2).sum() / (len(x) - 2) / sxx)
    scale = 10 / y.mean()
    half = sps.t.ppf(0.975, 4) * se
    assert t["points"] == 6 and t["relative_drop"] == pytest.approx(-slope * scale, rel=1e-9)
    assert t["relative_drop"] > 0.05
    assert t["p"] == pytest.approx(sps.t.cdf(slope / se, 4), rel=1e-9) and t["p"] > 0.3
    assert t["drop_ci95"] == pytest.approx([-(slope + half) * scale, -(slope - half) * scale], rel=1e-9)
    assert t["falling"] is False  # the 5 % rule alone called this falling
    falling = [v - 0.03 * (s - 30) for s, v in zip(steps, noisy)]  # the same scatter on a fall of 0.3
    f = loss_trend([{"step": 2, "loss": 4.0}, *({"step": s, "loss": v} for s, v in zip(steps, falling))])
    assert f["falling"] is True and f["p"] < 0.05 and f["drop_ci95"][0] > 0.05
