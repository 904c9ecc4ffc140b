"""Statistics from per-example rows (score.evaluate.statistics, report.results.group_results):
the headline test is stratified, seeds are aggregated by example id (never as independent
samples), every condition gets the same intervals, and the findings say what applies.

Rows are made by the real scorer on one synthetic-temporal example, so they carry every field the
pipeline writes; only `id` and `subset` are set per row."""

from __future__ import annotations

import pytest

from tracekd.data import get_dataset
from tracekd.report.results import group_results
from tracekd.score import metrics
from tracekd.score.evaluate import score_output, statistics
from tracekd.traces.render import Trace, render
from tracekd.train.diagnostics import loss_trend

PUBLISHED_LABEL = {
    "during": [[209, 251], [64, 95]],
    "equal": [[47, 22], [6, 12]],
    "mix": [[0, 4], [5, 104]],
    "overlap": [[0, 0], [47, 84]],
}


@pytest.fixture(scope="module")
def make_rows():
    ds = get_dataset("synthetic-temporal", size=8)
    ex = next(iter(ds.load(None)))
    other = next(lab for lab in ("during", "equal", "mix", "overlap") if lab != ex.label)
    cache: dict[tuple, dict] = {}

    def row(label_ok: bool, answer_ok: bool, empty: bool = False) -> dict:
        key = (label_ok, answer_ok, empty)
        if key not in cache:
            trace = Trace(ex.label if label_ok else other, (), ex.answers if answer_ok else ("nobody at all",))
            cache[key] = score_output(ds, ex, "" if empty else render(trace, "paper", ds.label_sentence))
        return cache[key]

    def rows(tables: dict[str, list[list[int]]], prefix: str = "", flags=None, empty: int = 0) -> list[dict]:
        out = []
        for subset, ((a, b), (c, d)) in tables.items():
            for lab, ans, k in ((True, True, a), (True, False, b), (False, True, c), (False, False, d)):
                for _ in range(k):
                    i = len(out)
                    r = {**row(lab, ans, empty=i < empty), "id": f"{prefix}{subset}/{i}", "subset": subset}
                    if flags and flags(i):
                        r["flags"] = ["label_contradicts_dates"]
                    out.append(r)
        return out

    return rows


def test_headline_test_is_stratified_by_subset(make_rows):
    rows = make_rows(PUBLISHED_LABEL)
    s = statistics({0: rows})
    a = s["association"]["label"]
    assert a["table"] == [[256, 277], [122, 295]] and a["pooled"]["chi2"] == pytest.approx(34.418, abs=1e-3)
    assert a["stratified"]["by"] == "subset" and a["stratified"]["chi2"] == pytest.approx(3.633, abs=1e-3)
    assert {k: v["table"] for k, v in a["by_subset"].items()} == PUBLISHED_LABEL
    assert "by_seed" not in a
    # the paper's headline quantity and P(answer | step) are both there, named
    assert a["both_right"]["p"] == pytest.approx(256 / 950) and a["answer_given_step_right"]["p"] == pytest.approx(
        256 / 533
    )
    assert a["answer_given_step_wrong"]["p"] == pytest.approx(122 / 417)
    assert s["rates"]["label_accuracy"]["mean"] == pytest.approx(533 / 950)
    assert s["regression"]["terms"]["label"]["estimable"] and s["regression"]["covariates"] == ["subset"]


def test_seeds_without_association_do_not_pool_into_one(make_rows):
    """Issue 8: two seeds with phi = 0 each pool to chi2 13.7; stratified by seed there is nothing."""
    seeds = {0: make_rows({"s": [[40, 10], [40, 10]]}), 1: make_rows({"s": [[2, 8], [18, 72]]})}
    assert [r["id"] for r in seeds[0]] == [r["id"] for r in seeds[1]]  # the same test items
    g = group_results("d", "m", "correct", seeds)
    a = g["association"]["label"]
    assert a["table"] == [[42, 18], [58, 82]] and a["pooled"]["chi2"] == pytest.approx(13.714, abs=1e-3)
    assert a["stratified"]["by"] == "subset x seed" and a["stratified"]["chi2"] == pytest.approx(0, abs=1e-12)
    assert a["stratified"]["p"] == pytest.approx(1.0) and a["stratified"]["odds_ratio"] == pytest.approx(1.0)
    assert {k: v["table"] for k, v in a["by_seed"].items()} == {"0": [[40, 10], [40, 10]], "1": [[2, 8], [18, 72]]}
    assert g["n"] == 100 and g["outputs"] == 200 and g["regression"]["covariates"] == ["subset", "seed"]
    label = next(f for f in g["findings"] if f["step"] == "label" and f["definitions"] == "tracekd")
    assert label["verdict"] == "none" and "no significant association" in label["text"]


def test_copies_of_one_seed_change_nothing_but_the_pooled_test(make_rows):
    """Issue 8: 1, 2, 3 copies of one seed gave chi2 7.25 -> 14.5 -> 21.8 and ever narrower intervals."""
    rows = make_rows({"equal": [[47, 22], [6, 12]], "during": [[30, 20], [25, 25]]})
    one = group_results("d", "m", "correct", {0: rows})
    for k in (2, 3):
        g = group_results("d", "m", "correct", dict.fromkeys(range(k), rows))
        a, a1 = g["association"]["label"], one["association"]["label"]
        assert a["pooled"]["chi2"] == pytest.approx(k * a1["pooled"]["chi2"])
        assert a["stratified"]["chi2"] == pytest.approx(a1["stratified"]["chi2"])
        assert a["stratified"]["odds_ratio_ci95"] == pytest.approx(a1["stratified"]["odds_ratio_ci95"])
        assert a["stratified"]["breslow_day"]["chi2"] == pytest.approx(a1["stratified"]["breslow_day"]["chi2"])
        for key in ("both_right", "answer_given_step_right", "answer_given_step_wrong"):
            assert a[key] == a1[key]
        for name, r in g["rates"].items():
            assert r["ci95"] == one["rates"][name]["ci95"] and r["method"] == one["rates"][name]["method"]
    assert one["association"]["label"]["by_subset"]["equal"]["pooled"]["chi2"] == pytest.approx(7.2545, abs=1e-4)


def test_disagreeing_seeds_get_an_interval_inside_zero_one(make_rows):
    seeds = {0: make_rows({"s": [[0, 0], [40, 10]]}), 1: make_rows({"s": [[0, 0], [10, 40]]})}
    r = group_results("d", "m", "answer_only", seeds)["rates"]["answer_accuracy"]
    assert r["per_seed"] == [0.8, 0.2] and r["mean"] == pytest.approx(0.5) and r["method"] == "bootstrap"
    assert 0 <= r["ci95"][0] < 0.5 < r["ci95"][1] <= 1 and r["sd"] == pytest.approx(0.4243, abs=1e-4)


def test_association_without_flagged_examples(make_rows):
    # items 0-59 flagged: there the step and the answer go together; elsewhere they do not
    rows = make_rows({"s": [[60, 20], [20, 60]]}, flags=lambda i: i < 60)
    s = statistics({0: rows})
    w = s["without_flagged"]["label_contradicts_dates"]
    assert w["left_out_outputs"] == 60 and w["left_out_items"] == 60
    assert w["association"]["label"]["table"] == [[0, 20], [20, 60]]
    g = group_results("d", "m", "correct", {0: rows})
    text = next(f["text"] for f in g["findings"] if f["step"] == "label" and f["definitions"] == "tracekd")
    assert "without the 60 outputs flagged label_contradicts_dates" in text


def test_caveats_parse_rate_few_items_and_falling_loss(make_rows):
    rows = make_rows({"s": [[6, 4], [10, 20]]}, empty=8)  # 8 of 40 outputs empty: parse rate 80 %
    falling = [{"step": s, "loss": 2.0 - 0.01 * s} for s in range(10, 101, 10)]
    g = group_results("d", "m", "correct", {0: rows}, training={"0": loss_trend(falling)})
    assert g["rates"]["parse_rate"]["mean"] == pytest.approx(0.8)
    text = next(f["text"] for f in g["findings"] if f["step"] == "label" and f["definitions"] == "tracekd")
    assert "parse rate 80.0 % (below 90%)" in text and "few items (40 test items" in text
    assert "training loss still falling at the end (seed 0: fitted drop 18 %" in text


def test_not_estimable_finding(make_rows):
    g = group_results("d", "m", "answer_only", {0: make_rows({"s": [[0, 0], [10, 30]]})})
    f = next(f for f in g["findings"] if f["step"] == "label" and f["definitions"] == "tracekd")
    assert f["verdict"] == "not estimable" and "the step is never right" in f["text"]
    assert not g["regression"]["terms"]["label"]["estimable"]


def test_statistics_follow_the_step_list(make_rows, monkeypatch):
    """A step added to the metric table gets its tables, tests, rates and a regression term."""
    copy = metrics.step("copy_of_answer", "copy of the answer", lambda r: bool(r["answer"]["correct"]))
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, copy])
    s = statistics({0: make_rows({"s": [[20, 10], [10, 20]]})})
    assert s["association"]["copy_of_answer"]["table"] == [[30, 0], [0, 30]]
    assert s["rates"]["copy_of_answer_accuracy"]["mean"] == 0.5
    assert "quasi-separation" in s["regression"]["terms"]["copy_of_answer"]["note"]
