"""The metric table (score/metrics.py): a metric added as one entry is computed, written and shown
everywhere - scores.json (`summarize`), results.json (`group_results`), report.md / report.html
(the report's rates table) and the terminal table of `tracekd evaluate`."""

from __future__ import annotations

import pytest
from rich.console import Console

from tracekd.data import get_dataset
from tracekd.report.build import html_report, markdown
from tracekd.report.results import group_results
from tracekd.report.tables import metrics_table
from tracekd.score import metrics
from tracekd.score.evaluate import score_output, summarize
from tracekd.traces.conditions import gold_trace
from tracekd.traces.render import render


@pytest.fixture(scope="module")
def scored():
    """Rows of 10 synthetic bAbI examples: gold traces for even ones, a short wrong answer for odd ones."""
    ds = get_dataset("synthetic-babi", size=10)
    rows = []
    for i, ex in enumerate(ds.load(None)):
        output = render(gold_trace(ex), "tagged", ds.label_sentence) if i % 2 == 0 else "answer: nowhere"
        rows.append(score_output(ds, ex, output))
    return ds, rows


def test_a_new_metric_is_one_entry(scored, monkeypatch, tmp_path):
    ds, rows = scored
    short = metrics.Metric(
        "short_output",
        "short",
        "short outputs (under 20 characters)",
        lambda r: len(r["output"]) < 20,
        higher_is_better=False,
    )
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, short])
    expected = sum(len(r["output"]) < 20 for r in rows) / len(rows)  # the odd half: "answer: nowhere"
    assert expected == 0.5

    summary = summarize(rows, ds)  # scores.json
    assert summary["rates"]["short_output"]["mean"] == expected
    group = group_results("synthetic-babi", "m", "correct", {0: rows})  # a results.json group
    assert group["rates"]["short_output"]["mean"] == expected
    assert group["rates"]["short_output"]["per_seed"] == [expected]

    results = {"name": "t", "conditions": ["correct"], "groups": [{**group, "examples": ["none.jsonl"]}]}
    md = markdown(results, {})
    header = next(line for line in md.splitlines() if line.startswith("| dataset | model | condition | seeds |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in md.splitlines() if line.startswith("| synthetic-babi | m | correct | 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # an output metric: beside the parse rate, before the steps, the evidence detail and the answer
    assert columns[columns.index("parse rate") + 1 : columns.index("parse rate") + 3] == ["short", "label"]
    assert columns[-2:] == ["answer", "lenient"]  # the outcomes last: strict, then the lenient normalisation
    assert cells[columns.index("short")].startswith("50.0 [")
    assert "<th>short</th>" in html_report(results, {}, tmp_path, 0)

    console = Console(record=True, width=200)
    console.print(metrics_table(summary))
    text = console.export_text()
    line = next(line for line in text.splitlines() if line.startswith("short outputs (under 20 characters)"))
    assert "50.0 [" in line


def test_every_answer_score_of_a_dataset_scorer_is_shown(scored):
    """Keys an answer scorer adds were averaged into scores.json but never shown."""
    ds, rows = scored
    msmarco_like = [{**r, "answer": {**r["answer"], "rouge_l": 0.25}} for r in rows]
    console = Console(record=True, width=200)
    console.print(metrics_table(summarize(msmarco_like, ds)))
    text = console.export_text()
    assert any(line.startswith("answer rouge_l") and line.rstrip().endswith("25.0") for line in text.splitlines())
    # em and lenient_correct are the strict and lenient accuracy rows (with intervals), not repeated
    assert not any(line.startswith(("answer em", "answer lenient_correct")) for line in text.splitlines())


def test_the_table_names_each_step_once():
    names = [m.name for m in metrics.METRICS]
    assert len(names) == len(set(names))
    assert [m.step for m in metrics.steps()] == ["label", "evidence", "anchor", "answer_fact", "trace"]
    assert metrics.paper_steps() == ["label", "evidence", "trace"]
    assert metrics.rule_steps() == ["evidence", "trace"]
    assert [m.step for m in metrics.steps() if m.in_regression] == ["label", "evidence"]
