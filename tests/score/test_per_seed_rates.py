"""A seed with no evaluated outputs has no per-seed rate (null), not 0 / 0 = NaN with a
RuntimeWarning; the sd is over the seeds that have one."""

from __future__ import annotations

import warnings

from tracekd.data import get_dataset
from tracekd.score.evaluate import score_output, statistics
from tracekd.traces.render import Trace, render


def test_a_seed_without_evaluated_outputs_has_no_rate():
    ds = get_dataset("synthetic-temporal", size=8)
    examples = list(ds.load(None))
    good = [
        {**score_output(ds, ex, render(Trace(ex.label, (), ex.answers), "paper", ds.label_sentence)), "id": ex.id}
        for ex in examples
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        s = statistics({0: good, 1: good, 2: []})  # seed 2: no output was evaluated
    for rate in s["rates"].values():
        assert rate["per_seed"][2] is None and None not in rate["per_seed"][:2]
        assert rate["sd"] == 0.0  # the two defined seeds agree
