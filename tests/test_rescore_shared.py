"""Rescoring the paper's 12 published output files (../shared/reference-outputs)."""

from __future__ import annotations

import ast
import json
import re
import string
import subprocess
import sys

import pytest

from tracekd.score.rescore import condition_from_name, rescore

CONDITIONS = {"sft-adapter": "answer_only", "sft-adapter-reasoning-facts": "correct",
              "sft-adapter-reasoning-facts-perturbed": "incorrect"}


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
    for path, r in results["files"].items():
        pub, up = r["published"], r["summary"]["answer"]["upstream"]
        assert pub is not None
        diffs = [abs(100 * up[k] - pub[k]) for k in ("acc", "f1")]
        if "/during/" in path:
            # the published `during` scores count 1-3 records per file as wrong that score right here
            # (all four metrics move together); see docs/scoring.md
            assert max(diffs) <= 0.6, (path, diffs)
        else:
            assert max(diffs) <= 0.1 + 1e-9, (path, diffs)


def _norm(s):
    s = s.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def _answer_right(pred, gold):
    seg = pred
    if "<answer>" in seg:
        seg = seg.split("<answer>", 1)[1].split("</answer>", 1)[0]
    elif "</think>" in seg:
        seg = seg.split("</think>", 1)[1]
    seg = seg.strip()
    if seg.startswith("assistant"):
        seg = seg[len("assistant"):].strip()
    try:
        items = ast.literal_eval(seg)
    except (ValueError, SyntaxError):
        items = [seg]
    if isinstance(items, str):
        items = [items]
    got = {_norm(str(x)) for x in items} - {""}
    return bool(got) and got == {_norm(g) for g in gold}


def _label(pred):
    for line in pred.replace("<think>", "\n").split("\n"):
        if line.strip().startswith("The temporal relation") and "is:" in line:
            return line.split("is:", 1)[1].split("<")[0].strip().rstrip(".").strip().lower()
    return None


def _paper_gold_facts(facts, gold):
    return {f for f in facts if any(g in f for g in gold)}


def _evidence_list(pred):
    m = pred.split("I need to use the following facts to answer the question:", 1)
    if len(m) < 2:
        return None
    seg = m[1].split("</think>", 1)[0].split("<answer>", 1)[0].strip()
    try:
        v = ast.literal_eval(seg)
        return [v] if isinstance(v, str) else list(v)
    except (ValueError, SyntaxError):
        return [seg]


@pytest.mark.parametrize("stem", list(CONDITIONS))
def test_two_by_two_counts_computed_independently(results, reference_outputs, stem):
    path = reference_outputs / "evaluation_outputs" / "equal" / f"Llama-3.2-1B-Instruct-{stem}_default.json"
    recs = [json.loads(line) for line in path.open()]
    answer = [_answer_right(r["prediction"], r["gold"]) for r in recs]
    label = [_label(r["prediction"]) == "equal" for r in recs]
    expected = [[sum(l and a for l, a in zip(label, answer)), sum(l and not a for l, a in zip(label, answer))],
                [sum((not l) and a for l, a in zip(label, answer)), sum((not l) and (not a) for l, a in zip(label, answer))]]
    summary = results["files"][str(path)]["summary"]
    assert summary["association"]["label"]["table"] == expected
    assert sum(map(sum, expected)) == 87


def test_evidence_table_under_the_papers_rule(shared_data, reference_outputs):
    """With --ir-rule paper the gold evidence is what the paper's models were taught to cite."""
    path = reference_outputs / "evaluation_outputs" / "mix" / "Llama-3.2-1B-Instruct-sft-adapter-reasoning-facts_default.json"
    res = rescore("trace-check-qa", "cotempqa", str(shared_data / "cotempqa"), [str(path)], ir_rule="paper")
    recs = [json.loads(line) for line in path.open()]
    answer = [_answer_right(r["prediction"], r["gold"]) for r in recs]
    ev = []
    for r in recs:
        cited = _evidence_list(r["prediction"])
        gold = _paper_gold_facts(r["facts"], r["gold"])
        ev.append(cited is not None and set(cited) == gold and all(c in r["facts"] for c in cited))
    expected = [[sum(e and a for e, a in zip(ev, answer)), sum(e and not a for e, a in zip(ev, answer))],
                [sum((not e) and a for e, a in zip(ev, answer)), sum((not e) and (not a) for e, a in zip(ev, answer))]]
    assert res["files"][str(path)]["summary"]["association"]["evidence"]["table"] == expected
    assert expected[0][0] + expected[0][1] > 0  # some traces cite exactly the taught facts


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
    trace = s["paper"]["association"]["trace"]
    (x, y), _ = trace["table"]
    assert (x, x + y) == (273, 522) and s["paper"]["evaluated"] == 950
    assert trace["both_right"]["p"] == pytest.approx(273 / 950) and trace["answer_given_step_right"]["p"] == pytest.approx(273 / 522)
    lo, hi = trace["both_right"]["ci95"]
    assert lo < 273 / 950 < hi and trace["both_right"]["method"] == "bootstrap"
    assert s["regression"]["terms"]["label"]["estimable"] and s["paper"]["regression"]["terms"]["evidence"]["estimable"]
    assert next(iter(results)) == "findings" and len(results["findings"]) == 3 * 6


def test_rescore_cli_writes_json_and_bad_input(tmp_path, shared_data, reference_outputs):
    f = reference_outputs / "evaluation_outputs" / "equal" / "Llama-3.2-1B-Instruct-sft-adapter_default.json"
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "tracekd", "rescore", "--source", str(shared_data / "cotempqa"), str(f),
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "72.4" in r.stdout and "χ²" in r.stdout
    assert json.loads(out.read_text())["files"][str(f)]["condition"] == "answer_only"
    bad = tmp_path / "bad.json"
    lines = f.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["question"] = "A question no example has?"
    bad.write_text(lines[0] + "\n" + json.dumps(rec) + "\n")
    out2 = tmp_path / "r2.json"
    r = subprocess.run([sys.executable, "-m", "tracekd", "rescore", "--source", str(shared_data / "cotempqa"), str(bad),
                        "--json", str(out2)], capture_output=True, text=True)
    assert r.returncode == 2 and f"{bad}:2" in " ".join(r.stderr.split()) and not out2.exists()
    bad.write_text(json.dumps({"id": "x", "output": "y"}) + "\n")
    r = subprocess.run([sys.executable, "-m", "tracekd", "rescore", "--source", str(shared_data / "cotempqa"), str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a trace-check-qa record" in r.stderr and f"{bad}:1" in " ".join(r.stderr.split())


def test_rescore_report_uses_the_same_report_code(tmp_path, shared_data, reference_outputs):
    files = sorted(str(p) for p in (reference_outputs / "evaluation_outputs").glob("*/*.json"))
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "tracekd", "rescore", "--source", str(shared_data / "cotempqa"), *files,
                        "--report", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "rescore" and [g["condition"] for g in res["groups"]] == ["answer_only", "correct", "incorrect"]
    assert all(g["n"] == 950 and g["model"] == "Llama-3.2-1B-Instruct" for g in res["groups"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "Llama-3.2-1B-Instruct" in page and 'class="ex"' in page
    md = (out / "report.md").read_text()
    assert "answer_only" in md and "Fisher p" in md and md.index("## Findings") < md.index("## Headline")
    for needle in ("CMH χ²", "χ² pool", "both✓", "adjusted OR", "Per subset (tracekd definitions)", "paper's definitions"):
        assert needle in md and needle in page.replace("&#x27;", "'")
    # the whole command, per-subset tables, CMH, the regression and the paper's joint share on the terminal
    for needle in ("Findings", "CMH χ²", "Per subset", "Logistic regression", "paper: trace&ans ✓"):
        assert needle in r.stdout
    # the report rebuilds from results.json alone
    (out / "report.html").unlink()
    r = subprocess.run([sys.executable, "-m", "tracekd", "report", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and (out / "report.html").read_text() == page
