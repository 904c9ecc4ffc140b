"""The report's training section: each trained cell's loss curve (plot and table) and the flag
for a loss still falling in its last quarter, from `train.diagnostics.loss_trend` (the findings' rule)."""

from __future__ import annotations

import io

from tracekd.report.build import _training
from tracekd.report.plots import loss_curves
from tracekd.train.diagnostics import loss_trend

FALLING = [{"step": s, "loss": 2.0 - 0.01 * s} for s in range(10, 101, 10)]  # last quarter: 1.2 -> 1.0
FLAT = [{"step": s, "loss": 3.0 / s if s < 50 else 0.06 + 0.001 * (-1) ** s} for s in range(2, 101, 2)]


def _results():
    group = {"dataset": "d", "model": "m"}
    return {
        "groups": [
            {**group, "condition": "baseline"},
            {**group, "condition": "correct", "training": {"0": loss_trend(FLAT), "1": loss_trend(FALLING)}},
            {**group, "condition": "incorrect", "training": {"0": loss_trend(FLAT[:2])}},
        ]
    }


def test_loss_trend_keeps_the_curve():
    t = loss_trend([*FALLING, {"step": 100, "train_loss": 1.5}, {"epoch": 1}])
    assert t["curve"] == [[float(s), 2.0 - 0.01 * s] for s in range(10, 101, 10)]
    assert loss_trend([])["curve"] == []


def test_training_table_flags_a_falling_cell():
    header, rows = _training(_results())
    assert header[-6:] == [
        "seed",
        "steps",
        "first loss",
        "last loss",
        "fitted drop, last quarter [95 % CI], p",
        "loss",
    ]
    assert rows == [
        ["d", "m", "correct", "0", "100", "1.500", "0.061", rows[0][7], "not falling"],
        ["d", "m", "correct", "1", "100", "1.900", "1.000", "18.2 % [18.2, 18.2], p 0", "still falling"],
        ["d", "m", "incorrect", "0", "4", "1.500", "0.750", "—", "unknown"],
    ]
    assert abs(float(rows[0][7].split(" %")[0])) < 5 and rows[0][7].endswith(", p 0.5")
    assert _training({"groups": [{"dataset": "d", "model": "m", "condition": "baseline"}]}) is None


def test_loss_plot_has_one_line_per_trained_cell(monkeypatch):
    from PIL import Image

    from tracekd.report import plots

    png = loss_curves(_results(), "d", "m")
    assert Image.open(io.BytesIO(png)).format == "PNG"
    monkeypatch.setattr(plots, "_png", lambda fig: fig)
    ax = loss_curves(_results(), "d", "m").axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["correct seed 0", "correct seed 1 — still falling", "incorrect seed 0 — trend unknown"]
    assert ax.lines[1].get_xydata().tolist() == [[float(s), 2.0 - 0.01 * s] for s in range(10, 101, 10)]
    assert loss_curves(_results(), "other", "m") is None
