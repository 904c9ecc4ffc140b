"""Rescoring the paper's 12 published output files (../shared/reference-outputs)."""

from __future__ import annotations

import ast
import json
import re
import string
import subprocess
import sys

import pytest

from independent import label_of
from tracekd.rescore.run import condition_from_name, rescore

CONDITIONS = {
    "sft-adapter": "answer_only",
    "sft-adapter-reasoning-facts": "correct",
    "sft-adapter-reasoning-facts-perturbed": "incorrect",
}


@pytest.fixture(scope="module")
def results(shared_data, reference_outputs):
    files = sorted(str(p) for p in (reference_outputs / "evaluation_outputs").glob("*/*.json"))
    assert len(files) == 12
    return rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), files)


def test_condition_from_published_names():
    for stem, cond in CONDITIONS.items():
        assert condition_from_name(f"Llama-3.2-1B-Instruct-{stem}_default.json") == cond
    assert condition_from_name("something-else.json") == "unknown"


def test_every_record_joined_once(results):
    for cond in CONDITIONS.values():
        r = results["by_condition"][cond]
        assert r["files"] == 4 and r["summary"]["n"] == 950 and r["unique_examples"] == 950
    sizes = {path.split("/")[-2]: r["summary"]["n"] for path, r in results["files"].items()}
    assert sizes == {"during": 619, "equal": 87, "mix": 113, "overlap": 131}


def test_upstream_mode_reproduces_published_scores(results):
    """All five published numbers of all 12 files, exactly (the original scorer's rounding)."""
    assert len(results["files"]) == 12
    for path, r in results["files"].items():
        pub, up = r["published"], r["upstream"]
        assert set(pub) == {"acc", "f1", "p", "r", "avg"}
        assert {k: up[k] for k in pub} == pub, path


def test_upstream_scores_the_records_own_strings(shared_data, reference_outputs):
    """Three reproductions from the `during` files, where the old port differed from the original:
    "assistant professor" loses its "assistant" (the original deletes the word anywhere), and
    "Conservative People\'s Party" is cut at </answer> before it is normalised."""
    from tracekd.score.answers import cotempqa_upstream

    path = reference_outputs / "evaluation_outputs" / "during"
    recs = {}
    for name in (
        "Llama-3.2-1B-Instruct-sft-adapter_default.json",
        "Llama-3.2-1B-Instruct-sft-adapter-reasoning-facts-perturbed_default.json",
    ):
        recs[name] = [json.loads(line) for line in (path / name).open()]
    answer_only = recs["Llama-3.2-1B-Instruct-sft-adapter_default.json"]
    perturbed = recs["Llama-3.2-1B-Instruct-sft-adapter-reasoning-facts-perturbed_default.json"]

    def score(rec):
        return cotempqa_upstream(rec["prediction"], rec["gold"], rec["question"], rec["facts"], rec["triple_element"])[
            "correct"
        ]

    for i in (446, 457, 513):
        assert answer_only[i]["gold"] == ["assistant professor"] and answer_only[i]["prediction"].endswith(
            "['assistant professor']"
        )
        assert not score(answer_only[i])
    assert perturbed[233]["gold"] == ["Conservative People's Party"] and score(perturbed[233])


def _norm(s):
    s = s.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def _items(seg):
    """A list as written: a Python literal, or ['a', 'b'] with unescaped quotes inside, or one item."""
    seg = seg.strip()
    try:
        items = ast.literal_eval(seg)
        return [items] if isinstance(items, str) else [str(x) for x in items]
    except (ValueError, SyntaxError):
        if seg.startswith("['") and seg.endswith("']"):
            return seg[2:-2].split("', '")
        return [seg]


def _answer_right(pred, gold):
    seg = pred
    answer_lines = [ln.strip()[len("answer:") :] for ln in pred.split("\n") if ln.strip().lower().startswith("answer:")]
    if "<answer>" in seg:
        seg = seg.split("<answer>", 1)[1].split("</answer>", 1)[0]
    elif answer_lines:
        seg = answer_lines[0].split("</think>", 1)[0]
    elif "</think>" in seg:
        seg = seg.split("</think>", 1)[1]
    seg = seg.strip()
    if seg.startswith("assistant"):
        seg = seg[len("assistant") :].strip()
    got = {_norm(x) for x in _items(seg)} - {""}
    return bool(got) and got == {_norm(g) for g in gold}


def _label(pred):
    return (label_of(pred) or "").lower()


def _paper_gold_facts(facts, gold):
    return {f for f in facts if any(g in f for g in gold)}


def _evidence_list(pred):
    m = pred.split("I need to use the following facts to answer the question:", 1)
    if len(m) < 2:
        return None
    return _items(m[1].split("</think>", 1)[0].split("<answer>", 1)[0])


@pytest.mark.parametrize("stem", list(CONDITIONS))
def test_two_by_two_counts_computed_independently(results, reference_outputs, stem):
    path = reference_outputs / "evaluation_outputs" / "equal" / f"Llama-3.2-1B-Instruct-{stem}_default.json"
    recs = [json.loads(line) for line in path.open()]
    answer = [_answer_right(r["prediction"], r["gold"]) for r in recs]
    label = [_label(r["prediction"]) == "equal" for r in recs]
    pairs = list(zip(label, answer))
    expected = [
        [sum(lab and a for lab, a in pairs), sum(lab and not a for lab, a in pairs)],
        [sum((not lab) and a for lab, a in pairs), sum((not lab) and (not a) for lab, a in pairs)],
    ]
    summary = results["files"][str(path)]["summary"]
    assert summary["association"]["label"]["table"] == expected
    assert sum(map(sum, expected)) == 87


def test_evidence_table_under_the_papers_rule(shared_data, reference_outputs):
    """With --ir-rule paper the gold evidence is what the paper's models were taught to cite."""
    path = (
        reference_outputs
        / "evaluation_outputs"
        / "mix"
        / "Llama-3.2-1B-Instruct-sft-adapter-reasoning-facts_default.json"
    )
    res = rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), [str(path)], ir_rule="paper")
    recs = [json.loads(line) for line in path.open()]
    answer = [_answer_right(r["prediction"], r["gold"]) for r in recs]
    ev = []
    for r in recs:
        cited = _evidence_list(r["prediction"])
        gold = _paper_gold_facts(r["facts"], r["gold"])
        ev.append(cited is not None and set(cited) == gold and all(c in r["facts"] for c in cited))
    expected = [
        [sum(e and a for e, a in zip(ev, answer)), sum(e and not a for e, a in zip(ev, answer))],
        [sum((not e) and a for e, a in zip(ev, answer)), sum((not e) and (not a) for e, a in zip(ev, answer))],
    ]
    assert res["files"][str(path)]["summary"]["association"]["evidence"]["table"] == expected
    assert expected[0][0] + expected[0][1] > 0  # some traces cite exactly the taught facts


def test_both_evidence_rules_side_by_side(results, reference_outputs):
    """Default for this format: the rule the paper's models were trained on, tracekd's beside it.
    On the 4 correct-trace files the full trace is right 237 + 2 times under the paper's rule
    (the review's table [[237, 2], [141, 570]]) and once under tracekd's."""
    assert results["ir_rule"] == "paper" and results["evidence_rules"] == ["paper", "tracekd"]
    correct = results["by_condition"]["correct"]
    assert correct["summary"]["association"]["trace"]["table"] == [[237, 2], [141, 570]]
    assert correct["evidence_rules"]["paper"]["association"]["trace"]["table"] == [[237, 2], [141, 570]]
    assert correct["evidence_rules"]["tracekd"]["steps"]["trace_accuracy"] == 1 / 950
    # computed here: label sentence says the subset and the cited facts are exactly the facts
    # containing an answer
    a = b = c = d = 0
    for sub in ("during", "equal", "mix", "overlap"):
        path = (
            reference_outputs
            / "evaluation_outputs"
            / sub
            / "Llama-3.2-1B-Instruct-sft-adapter-reasoning-facts_default.json"
        )
        for line in path.open():
            r = json.loads(line)
            cited = _evidence_list(r["prediction"])
            ev = (
                cited is not None
                and set(cited) == _paper_gold_facts(r["facts"], r["gold"])
                and all(x in r["facts"] for x in cited)
            )
            tr, ans = ev and _label(r["prediction"]) == sub, _answer_right(r["prediction"], r["gold"])
            a, b, c, d = a + (tr and ans), b + (tr and not ans), c + (not tr and ans), d + (not tr and not ans)
    assert [[a, b], [c, d]] == [[237, 2], [141, 570]]


def test_rows_carry_flags_and_the_split_evidence_steps(results):
    """Per-example rows carry the example's flags (24 of the 950 test items have a label that
    contradicts the dates), and the evidence step is split into anchor / answer-bearing."""
    s = results["by_condition"]["correct"]["summary"]
    assert s["flags"] == {"label_contradicts_dates": 24}
    assert set(s["association"]) == {"label", "evidence", "anchor", "answer_fact", "trace"}
    # the paper's models were taught to cite the answer-bearing facts, never the anchor
    assert s["steps"]["anchor_accuracy"] < 0.01
    assert s["steps"]["answer_fact_accuracy"] > 0.4


def test_stratified_test_and_papers_quantities_on_the_correct_trace_outputs(results):
    """The headline test is the CMH over the 4 subsets (by hand from the per-subset tables), the
    pooled χ² is kept as the paper's test, and the paper's headline 28 % is the share of all outputs
    whose trace and answer are both right (paper's definitions), not P(answer | trace right)."""
    s = results["by_condition"]["correct"]["summary"]
    a = s["association"]["label"]
    tables = [b["table"] for b in a["by_subset"].values()]
    assert len(tables) == 4 and [[sum(t[i][j] for t in tables) for j in (0, 1)] for i in (0, 1)] == a["table"]
    num = var = 0.0
    for (x, y), (z, w) in tables:
        n1, n2, m1, m2, n = x + y, z + w, x + z, y + w, x + y + z + w
        if 0 not in (n1, n2, m1, m2):
            num += x - n1 * m1 / n
            var += n1 * n2 * m1 * m2 / (n * n * (n - 1))
    assert a["stratified"]["chi2"] == pytest.approx(num * num / var) and a["stratified"]["by"] == "subset"
    assert a["stratified"]["chi2"] < a["pooled"]["chi2"] / 5
    # the paper's "28 %" is the label step's joint share 275/950 = 28.9 %; the trace's under the
    # any-fact rule is 272/950 (not the review's 273: the faithful upstream scorer deletes "assistant"
    # from every output, so cotempqa/during/2132, gold "assistant professor", is wrong under it)
    label = s["paper"]["association"]["label"]
    assert label["table"][0][0] == 275 and label["both_right"]["p"] == pytest.approx(275 / 950)
    any_fact = s["paper"]["rules"]["any-fact"]
    (x, y), _ = any_fact["association"]["trace"]["table"]
    assert (x, x + y) == (272, 522) and s["paper"]["evaluated"] == 950
    # the paper's stated rule (a gold fact verbatim) is right in 597/950, any-fact in 928/950
    assert s["paper"]["rule"] == "stated" and s["paper"]["rules"]["stated"]["evidence_accuracy"] * 950 == 597
    assert any_fact["evidence_accuracy"] * 950 == 928
    trace = s["paper"]["association"]["trace"]
    (x, y), _ = trace["table"]
    assert (x, x + y) == (270, 344)
    assert trace["both_right"]["p"] == pytest.approx(270 / 950)
    assert trace["answer_given_step_right"]["p"] == pytest.approx(270 / 344)
    lo, hi = trace["both_right"]["ci95"]
    assert lo < 270 / 950 < hi and trace["both_right"]["method"] == "bootstrap"
    assert s["regression"]["terms"]["label"]["estimable"] and s["paper"]["regression"]["terms"]["evidence"]["estimable"]
    # per condition: the 5 steps under tracekd's definitions, the 3 under the paper's
    assert next(iter(results)) == "findings" and len(results["findings"]) == 3 * (5 + 3)


def test_rescore_cli_writes_json_and_bad_input(tmp_path, shared_data, reference_outputs):
    f = reference_outputs / "evaluation_outputs" / "equal" / "Llama-3.2-1B-Instruct-sft-adapter_default.json"
    out = tmp_path / "r.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "rescore",
            "--source",
            str(shared_data / "cotempqa"),
            str(f),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    # a value tracekd computed, checked against the same value computed here from the raw file (its
    # strict answer accuracy, 58/87 = 66.7), not the published number it prints beside its own
    recs = [json.loads(line) for line in f.open()]
    strict = f"{100 * sum(_answer_right(x['prediction'], x['gold']) for x in recs) / len(recs):.1f}"
    published = json.loads((f.parents[2] / "evaluation_results" / "equal" / f.name).read_text())
    assert strict not in {f"{v:.1f}" for v in published.values()}
    assert strict in r.stdout and "χ²" in r.stdout
    assert "evidence (paper rule)" in r.stdout and "evidence (tracekd rule)" in r.stdout
    saved = json.loads(out.read_text())["files"][str(f)]
    assert saved["condition"] == "answer_only" and f"{100 * saved['summary']['answer']['accuracy']:.1f}" == strict
    assert set(saved["evidence_rules"]) == {"paper", "tracekd"}
    bad = tmp_path / "bad.json"
    lines = f.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["question"] = "A question no example has?"
    bad.write_text(lines[0] + "\n" + json.dumps(rec) + "\n")
    out2 = tmp_path / "r2.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "rescore",
            "--source",
            str(shared_data / "cotempqa"),
            str(bad),
            "--json",
            str(out2),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and f"{bad}:2" in " ".join(r.stderr.split()) and not out2.exists()
    bad.write_text(json.dumps({"id": "x", "output": "y"}) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "rescore", "--source", str(shared_data / "cotempqa"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not a trace-check-qa record" in r.stderr and f"{bad}:1" in " ".join(r.stderr.split())


def test_rescore_report_uses_the_same_report_code(tmp_path, shared_data, reference_outputs):
    files = sorted(str(p) for p in (reference_outputs / "evaluation_outputs").glob("*/*.json"))
    out = tmp_path / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "rescore",
            "--source",
            str(shared_data / "cotempqa"),
            *files,
            "--report",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "rescore" and [g["condition"] for g in res["groups"]] == [
        "answer_only",
        "correct",
        "incorrect",
    ]
    assert all(g["n"] == 950 and g["model"] == "Llama-3.2-1B-Instruct" for g in res["groups"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "Llama-3.2-1B-Instruct" in page and 'class="ex"' in page
    md = (out / "report.md").read_text()
    assert (
        "answer_only" in md
        and "Fisher p" in md
        and md.index("## Summary") < md.index("## Findings") < md.index("<summary>Headline")
    )
    for needle in (
        "CMH χ²",
        "χ² pool",
        "both✓",
        "adjusted OR",
        "Per subset (tracekd definitions)",
        "paper's definitions",
    ):
        assert needle in md and needle in page.replace("&#x27;", "'")
    # the whole command, per-subset tables, CMH, the regression and the paper's joint share on the terminal
    for needle in ("Findings", "CMH χ²", "Per subset", "Logistic regression", "both✓", "P(a|t)", "ev P", "tr T"):
        assert needle in r.stdout
    # one row per file, the original scorer's five numbers equal to the published ones on every file;
    # no number cut short to fit the width
    per_file = r.stdout[r.stdout.index("per file (Llama-3.2-1B-Instruct)") :].split("\n")[
        : 3 + 3 * 12
    ]  # rates over intervals
    assert sum(line.rstrip().endswith(" same") for line in per_file) == 12 and "…" not in r.stdout
    # the report rebuilds from results.json alone
    (out / "report.html").unlink()
    r = subprocess.run([sys.executable, "-m", "tracekd", "report", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and (out / "report.html").read_text() == page


def test_light_views_equal_the_full_statistics(results, shared_data, reference_outputs):
    """Per file the summary carries the 2x2 tables without tests (the tests are on the files
    pooled), and another evidence rule's view carries only its steps and their association: both
    the same numbers a full summary of the same rows gives."""
    from tracekd.data import get_dataset
    from tracekd.score.evaluate import rule_view, summarize

    rows: dict[str, list] = {}
    files = sorted(str(p) for p in (reference_outputs / "evaluation_outputs").glob("*/*.json"))
    res = rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), files, rows_out=rows)
    ds = get_dataset("cotempqa", ir_rule="paper")
    for f in res["files"].values():
        light = f["summary"]
        mine = [r for r in rows[f["condition"]] if r["subset"] == f["subset"]]
        assert len(mine) == light["n"]
        full = summarize(mine, ds)
        assert set(full) - set(light) == {"seeds", "regression", "without_flagged"}
        assert {k: v for k, v in light.items() if k not in ("association", "paper", "rates")} == {
            k: v for k, v in full.items() if k in light and k not in ("association", "paper", "rates")
        }
        # a file's rates: the same rates, with Wilson intervals (one output per item) in place of the bootstrap
        assert set(light["rates"]) <= set(full["rates"]) and "answer_accuracy" in light["rates"]
        for k, rate in light["rates"].items():
            assert rate["method"] == "wilson" and rate["mean"] == pytest.approx(full["rates"][k]["mean"])
            assert rate["ci95"][0] <= rate["mean"] <= rate["ci95"][1]
        assert {k: b["table"] for k, b in full["association"].items()} == {
            k: b["table"] for k, b in light["association"].items()
        }
        assert {k: b["table"] for k, b in full["paper"]["association"].items()} == {
            k: b["table"] for k, b in light["paper"]["association"].items()
        }
    correct = res["by_condition"]["correct"]
    view = rule_view(rows["correct"])
    assert {k: view[k] for k in ("steps", "association")} == {
        "steps": correct["summary"]["steps"],
        "association": correct["summary"]["association"],
    }
    # the rates an evidence rule changes, with the summary's intervals
    assert view["rates"] == {
        k: {x: correct["summary"]["rates"][k][x] for x in ("mean", "ci95", "method")}
        for k in ("evidence_accuracy", "trace_accuracy")
    }
    # the secondary rule's view is what a full summary of the rows judged under that rule gives
    other: dict[str, list] = {}
    rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), files, ir_rule="tracekd", rows_out=other)
    tracekd_rule = correct["evidence_rules"]["tracekd"]
    full = summarize(other["correct"], get_dataset("cotempqa", ir_rule="tracekd"))
    assert {k: tracekd_rule[k] for k in ("steps", "association")} == {
        "steps": full["steps"],
        "association": full["association"],
    }
    assert tracekd_rule["rates"]["trace_accuracy"]["ci95"] == full["rates"]["trace_accuracy"]["ci95"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, reference_outputs):
    """The 12 published files, and a second model's copies of them under another name that lacks
    one file (incorrect traces, `during`), as when one model of a study lacks a file another has."""
    import shutil

    root = tmp_path_factory.mktemp("two_models") / "evaluation_outputs"
    for src in sorted((reference_outputs / "evaluation_outputs").glob("*/*.json")):
        (root / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / src.parent.name / src.name)
        if not (src.parent.name == "during" and "perturbed" in src.name):
            shutil.copy(src, root / src.parent.name / src.name.replace("Llama-3.2-1B-Instruct", "Other-1B"))
    return sorted(str(p) for p in root.glob("*/*.json"))


def test_models_are_strata_and_conditions_are_matched(two_models, shared_data):
    """Several models pooled: each condition's tests are stratified by subset x model, the
    regression has the model as a covariate, every model has its own results, the findings say the
    models were pooled, and the conditions are compared on the items every condition has (the
    second model's 619 `during` items are left out of all three conditions, not of one)."""
    res = rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), two_models)
    assert res["models"] == ["Llama-3.2-1B-Instruct", "Other-1B"]
    assert {f["model"] for f in res["files"].values()} == set(res["models"]) and len(res["files"]) == 23
    assert res["matched"]["dropped_outputs"] == {"answer_only": 619, "correct": 619, "incorrect": 0}
    assert list(res["by_condition"]) == ["answer_only", "correct", "incorrect"]
    for cond, r in res["by_condition"].items():
        s = r["summary"]
        assert r["models"] == res["models"] and r["outputs"] == s["n"] == 950 + 331
        assert s["grouped_by"] == "model" and s["seeds"] == res["models"]
        label = s["association"]["label"]
        assert label["stratified"]["by"] == "subset x model" and set(label["by_model"]) == set(res["models"])
        assert s["regression"]["covariates"] == ["subset", "model"]
        assert {m: res["by_model"][m][cond]["summary"]["n"] for m in res["models"]} == {
            "Llama-3.2-1B-Instruct": 950,
            "Other-1B": 331,
        }
    pooled = [f for f in res["findings"] if f["model"] == "Llama-3.2-1B-Instruct+Other-1B"]
    assert pooled and all("2 models pooled, stratified by model" in f["text"] for f in pooled)
    assert all("stratified by subset x model" in f["text"] for f in pooled if f["verdict"] != "not estimable")
    # one model's results are those of that model's files alone
    alone = rescore(
        "trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), [f for f in two_models if "Llama" in f]
    )
    assert "by_model" not in alone and alone["models"] == ["Llama-3.2-1B-Instruct"]
    mine = res["by_model"]["Llama-3.2-1B-Instruct"]["correct"]["summary"]
    assert mine["answer"] == alone["by_condition"]["correct"]["summary"]["answer"]


def test_rescore_terminal_shows_each_model(two_models, shared_data):
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "rescore", "--source", str(shared_data / "cotempqa"), *two_models],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for needle in ("per file (Llama-3.2-1B-Instruct)", "per file (Other-1B)", "by condition: Other-1B", "parsed"):
        assert needle in r.stdout
    assert "…" not in r.stdout
    # every rate of the by-condition tables carries its interval
    table = r.stdout[r.stdout.index("by condition (all files pooled)") :]
    for name in ("answer", "parsed", "label", "anchor", "ev P", "tr P", "ev T", "tr T", "both✓"):
        line = next(line for line in table.splitlines() if line.lstrip("│ ").startswith(name))
        assert line.count("[") == 3, line


def test_authors_code_rule_from_their_csv(tmp_path, shared_data, reference_outputs):
    """`--authors-csv`: the paper's steps are also judged by the port of the authors' script against
    their test CSV (here one written from the `equal` file's own records, in its order, in their
    columns), beside the stated and any-fact rules, with their three matrices as they print them."""
    import csv

    src = (
        reference_outputs
        / "evaluation_outputs"
        / "equal"
        / "Llama-3.2-1B-Instruct-sft-adapter-reasoning-facts_default.json"
    )
    records = [json.loads(line) for line in src.read_text().splitlines()]
    folder = tmp_path / "authors"
    folder.mkdir()
    with open(folder / "equal_test.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["answer", "facts", "reasoning"])
        w.writeheader()
        for rec in records:
            w.writerow(
                {
                    "answer": str(rec["gold"]),
                    "facts": str(rec["facts"]),
                    "reasoning": "The temporal relation between the event in question and the event in context is: equal.\n",
                }
            )
    res = rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), [str(src)], authors_csv=folder)
    c = res["by_condition"]["correct"]
    rules = c["summary"]["paper"]["rules"]
    assert set(rules) == {"stated", "any-fact", "authors-code"}
    # the authors' loop, written out: the first row whose answer text contains the first gold answer
    right = 0
    for rec in records:
        j = next(k for k, r in enumerate(records) if rec["gold"][0] in str(r["gold"]))
        trace = rec["prediction"].split("</think>")[0]
        right += "think" in rec["prediction"] and bool(trace) and any(f in trace for f in records[j]["facts"])
    assert rules["authors-code"]["evidence_accuracy"] == pytest.approx(right / len(records))
    assert rules["authors-code"]["evidence_accuracy"] < rules["stated"]["evidence_accuracy"]  # other questions' rows
    m = c["authors_code_matrices"]
    assert set(m) == {"category", "fact", "trace"} and sum(m["fact"].values()) == pytest.approx(100, abs=0.05)
    with pytest.raises(Exception, match="authors' test CSV"):
        rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), [str(src)], authors_csv=tmp_path)


def test_every_finding_names_its_evidence_rule_and_construction(results):
    """Each finding says which evidence rule judged it, and a step whose gold facts state the
    answer says its association is largely by construction instead of "Caveats: none"."""
    for f in results["findings"]:
        named = "gold evidence: paper rule" if f["definitions"] == "tracekd" else "evidence rule: stated"
        assert f"({f['definitions']} definitions, {named})" in f["text"]
    correct = {(f["step"], f["definitions"]): f["text"] for f in results["findings"] if f["condition"] == "correct"}
    assert (
        "by construction" in correct["answer_fact", "tracekd"] and "by construction" not in correct["label", "tracekd"]
    )
    assert "by construction" not in correct["anchor", "tracekd"]


def test_scoring_docs_tables_are_the_codes_output(results):
    """docs/scoring.md's tables on the 12 published files are made by the code: a change of the
    statistics that moves a number fails here until the section is regenerated."""
    from pathlib import Path

    from tracekd.rescore.tables import scoring_docs_tables

    doc = (Path(__file__).resolve().parents[2] / "docs" / "scoring.md").read_text()
    begin, end = "<!-- generated: scoring_docs_tables -->\n", "<!-- end generated -->"
    section = doc[doc.index(begin) + len(begin) : doc.index(end)]
    assert section == scoring_docs_tables(results), (
        "docs/scoring.md is stale: replace the section between its markers with "
        "tracekd.rescore.tables.scoring_docs_tables(rescore(...)) of the 12 published files"
    )
    assert "| correct | label (paper) | 41.8 | 5.52 (0.019) | 1.50 [1.07, 2.12] |" in section
