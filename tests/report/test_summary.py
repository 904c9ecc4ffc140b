"""The report leads with the answer: a summary (answer accuracy per condition with intervals, the
paired comparisons, one line per trace step worded by its verdict), the forest plot of the
stratified odds ratios, findings only where they apply (a condition without a trace is named once),
and every table folded below (`<details>`, in report.md too).

The report is built from a small run: synthetic bAbI test items, a `correct` condition whose
outputs are the gold traces with the answer or the evidence spoiled in a fixed pattern (so both
the step and the answer vary), and an `answer_only` condition with no trace. A real browser
(Playwright driving Debian's chromium, as in humanstudy/test_browser.py; skipped without one unless
TRACEKD_REQUIRE_BROWSER is set) opens report.html: no console error, the summary in the first
viewport of a non-blank screenshot, the tables folded, the example filters working."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from browser import CHROMIUM, need_browser
from tracekd.data.config import DatasetConfig
from tracekd.jsonio import read_jsonl
from tracekd.prepare import prepare
from tracekd.report.build import write_report
from tracekd.report.results import group_results, write_results
from tracekd.score.evaluate import evaluate
from tracekd.score.outputs import read_rows


def _output(k: int, completion: str, answer: str) -> str:
    """Item k's output, by k mod 8: 0-4 gold, 5 a wrong answer, 6 wrong evidence and answer, 7 wrong
    evidence (a right evidence step goes with a right answer, odds ratio 5 in the pattern)."""
    if k % 8 in (6, 7):
        completion = re.sub(r"evidence: .*", "evidence: nothing of the sort.", completion)
    if k % 8 in (5, 6):
        completion = completion.replace(f"answer: {answer}", "answer: nowhere")
    return completion


def _cell(root: Path, name: str, outputs: list[dict]) -> list[dict]:
    preds = root / f"{name}.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in outputs))
    evaluate(root / "data", preds, root / "run" / name / "scores.json")
    return read_rows(root / "run" / name / "scores.examples.jsonl")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("summary")
    prepare(DatasetConfig(name="synthetic-babi", size=320), "correct", "tagged", 0, root / "data")
    test = [r for _, r in read_jsonl(root / "data" / "test.jsonl")]
    correct = _cell(
        root,
        "correct",
        [
            {"id": r["id"], "output": _output(k, r["completion"][0]["content"], r["answers"][0])}
            for k, r in enumerate(test)
        ],
    )
    answer_only = _cell(
        root,
        "answer_only",
        [{"id": r["id"], "output": f"answer: {r['answers'][0] if k % 3 else 'nowhere'}"} for k, r in enumerate(test)],
    )
    rows = {("synthetic-babi", "m", "answer_only"): {0: answer_only}, ("synthetic-babi", "m", "correct"): {0: correct}}
    groups = [
        {**group_results(*key, by_seed), "examples": [f"{key[2]}/scores.examples.jsonl"]}
        for key, by_seed in rows.items()
    ]
    results = write_results(
        root / "run" / "results.json", "small", "experiment", {}, ["answer_only", "correct"], groups, rows
    )
    write_report(results, root / "run")
    return root / "run"


def test_the_report_opens_with_the_summary_and_folds_the_tables(run):
    md = (run / "report.md").read_text()
    order = ["## Summary", "## Each trace step with the answer", "## Findings", "## Full tables", "## Plots"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    summary = md[md.index("## Summary") : md.index("## Each trace step")]
    results = json.loads((run / "results.json").read_text())
    g = {x["condition"]: x for x in results["groups"]}
    acc = g["correct"]["rates"]["answer_accuracy"]
    assert f"correct {100 * acc['mean']:.1f} % [{100 * acc['ci95'][0]:.1f}, {100 * acc['ci95'][1]:.1f}]" in summary
    (cmp,) = results["comparisons"]
    assert "correct vs answer_only: " in summary and f"sign test p = {cmp['p']:.3g}" in summary
    # one line per step, for the condition with a trace only, worded by its verdict
    evidence = next(line for line in summary.splitlines() if line.startswith("- Step **evidence**"))
    st = g["correct"]["association"]["evidence"]["stratified"]
    test = st.get("exact") or st
    verdict = next(
        f["verdict"] for f in g["correct"]["findings"] if f["step"] == "evidence" and f["definitions"] == "tracekd"
    )
    assert verdict == "positive" and "correct: a right step goes with a right answer" in evidence
    assert f"OR {test['odds_ratio']:.2f} [{test['odds_ratio_ci95'][0]:.2f}" in evidence
    assert "answer_only" not in evidence
    # the condition without a trace is named once, with no "not estimable" finding of its own
    assert "No trace to judge in answer_only" in summary
    findings = md[md.index("## Findings") : md.index("## Full tables")]
    assert "answer_only — " not in findings and "m / correct — evidence step (tracekd definitions)" in findings
    assert "(paper definitions)" not in findings and "no output of correct has one" in findings
    # every table folded, each under its title
    tables = md[md.index("## Full tables") : md.index("## Plots")]
    assert tables.count("<details>") == tables.count("</details>") == tables.count("<summary>") >= 5
    assert "<summary>Headline: answer accuracy (%)</summary>" in tables and "\n| " not in md[: md.index("## Full")]
    assert "![forest_synthetic-babi_m.png](plots/forest_synthetic-babi_m.png)" in md
    assert (run / "plots" / "forest_synthetic-babi_m.png").stat().st_size > 1000


#: which items (k mod 8, see `_output`) each filter of the explorer shows
WRONG = {"answer": (5, 6), "trace": (6, 7), "disagree": (5, 7)}


def g_n(run: Path) -> int:
    return next(g["n"] for g in json.loads((run / "results.json").read_text())["groups"] if g["condition"] == "correct")


def test_the_report_in_a_real_browser(run, tmp_path):
    need_browser()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run / "report.html").as_uri())
        page.wait_for_load_state("load")
        # the summary leads: it starts within the first viewport, under the title
        box = page.locator("#summary").bounding_box()
        assert box is not None and 0 < box["y"] < 200 and box["y"] + box["height"] <= 800, box
        assert page.locator("#summary h2").inner_text() == "Summary"
        assert page.locator("#summary li", has_text="Step evidence").first.is_visible()
        shot = Path(os.environ.get("TRACEKD_SCREENSHOT_DIR", tmp_path)) / "report_top.png"
        page.screenshot(path=str(shot))
        image = Image.open(shot).convert("L")
        assert image.size == (1280, 800)
        dark = sum(image.histogram()[:128])
        assert 0.005 < dark / (1280 * 800) < 0.5, dark  # text on a white page: neither blank nor a block
        # the forest plot is drawn (an image that decoded) and the full tables are folded until opened
        forest = page.locator("img[alt='forest_synthetic-babi_m.png']")
        assert forest.evaluate("img => img.complete && img.naturalWidth > 100")
        headline = page.locator("details", has=page.locator("summary", has_text="Headline: answer accuracy"))
        assert not headline.locator("table").is_visible()
        headline.locator("summary").click()
        assert headline.locator("table").is_visible()
        # the per-example filters of the explorer
        explorer = page.locator("details", has=page.locator("summary", has_text="synthetic-babi / m / correct"))
        explorer.locator("summary").first.click()
        examples = explorer.locator(".ex")
        n = examples.count()
        assert n == g_n(run) and n > 8
        expect = {mode: sum(k % 8 in ks for k in range(n)) for mode, ks in WRONG.items()}

        def shown() -> list[tuple[str, str]]:
            return [
                (e.get_attribute("data-answer"), e.get_attribute("data-trace"))
                for e in examples.all()
                if e.is_visible()
            ]

        select = explorer.locator("select")
        select.select_option("answer")
        assert all(a == "0" for a, _ in shown()) and len(shown()) == expect["answer"]
        select.select_option("trace")
        assert all(t == "0" for _, t in shown()) and len(shown()) == expect["trace"]
        select.select_option("disagree")
        assert all(a != t for a, t in shown()) and len(shown()) == expect["disagree"]
        select.select_option("all")
        assert len(shown()) == n
        browser.close()
    assert errors == []
