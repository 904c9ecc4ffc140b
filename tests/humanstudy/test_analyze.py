"""`simulate` → `analyze` on a 100-participant study, through the CLI: the analysis recovers the
simulated effect, and its statistics equal ones computed independently here from the exported CSV
(scipy, statsmodels, the krippendorff package)."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
import warnings

import krippendorff
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from humanstudy_helpers import ROOT, TYPES, make_sources, write_spec
from tracekd.humanstudy.analyze import cronbach_alpha, d_prime, krippendorff_ordinal
from tracekd.humanstudy.simulate import power
from tracekd.humanstudy.spec import INTERPRETABILITY, LOAD, load_study

EFFECT = {"rule": 1.0, "teacher": -0.3, "teacher_summary": 0.0, "teacher_posthoc": 0.0}


def _cli(*args):
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "humanstudy", *map(str, args)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
        check=False,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    root = make_sources(tmp_path_factory.mktemp("hs-analysis"))
    spec = write_spec(root, participants=100, attention_checks=2)
    study = root / "study"
    _cli("create", spec, "--out", study)
    effects = [f"--effect={t}={v}" for t, v in EFFECT.items()]
    assert "100 synthetic participants added" in _cli("simulate", study, *effects, "--seed", 7)
    printed = _cli("analyze", study, "--out", root / "analysis", "--boot", 1000)
    _cli("export", study, "--out", root / "answers.csv")
    result = json.loads((root / "analysis" / "analysis.json").read_text())
    long = pd.DataFrame(list(csv.DictReader((root / "answers.csv").open())))
    return {"root": root, "study": study, "printed": printed, "r": result, "long": long}


def _kept_pages(a) -> pd.DataFrame:
    """The kept participants' item pages, rebuilt from the CSV with pandas (not the module's code)."""
    long = a["long"]
    long = long[long["participant"].astype(int).isin(_kept(a))]
    items = long[(long["kind"] == "item") & (long["attention"] == "0")]
    wide = items.pivot_table(
        index=["participant", "item", "type", "wrong", "true_step", "seconds"],
        columns="question",
        values="value",
        aggfunc="first",
    ).reset_index()
    for q in (*INTERPRETABILITY, *LOAD):
        wide[q] = wide[q].astype(int)
    wide["interp"] = wide[list(INTERPRETABILITY)].mean(axis=1)
    return wide


def _kept(a) -> set[int]:
    long = a["long"]
    att = long[(long["attention"] == "1") & (long["question"] == "interp_understand")]
    failed = set(att.loc[att["value"] != "1", "participant"].astype(int))
    items = long[(long["kind"] == "item") & (long["attention"] == "0") & (long["question"] == "verify")]
    med = items.groupby("participant")["seconds"].apply(lambda s: s.astype(float).median())
    fast = set(med[med < 3].index.astype(int))
    return set(long["participant"].astype(int)) - failed - fast


def test_analyze_prints_findings_and_writes_the_plots_and_the_page(analysis):
    out = analysis["printed"]
    assert "participants kept" in out and "Interpretability — teacher is rated lower than rule" in out
    assert "Verification — rule: accuracy" in out and "report ->" in out
    folder = analysis["root"] / "analysis"
    for name in ("likert.png", "verification.png", "report.html", "analysis.json"):
        assert (folder / name).stat().st_size > 1000, name
    page = (folder / "report.html").read_text()
    assert "data:image/png;base64," in page and "Findings" in page and "http" not in page.split("<body>")[1]


def test_exclusions_are_stated_counted_and_match_the_rules(analysis):
    r = analysis["r"]
    assert [e["name"] for e in r["exclusions"]] == ["incomplete", "attention", "too fast"]
    assert all(e["rule"] for e in r["exclusions"])
    assert r["participants"] == 100 and r["kept"] == len(_kept(analysis))
    assert sum(e["excluded"] for e in r["exclusions"]) == 100 - r["kept"] > 0  # the simulated careless ones


def test_the_simulated_effect_is_recovered(analysis):
    mm = analysis["r"]["scales"]["interpretability"]["mixed_model"]
    assert mm["reference"] == "rule"
    for t in TYPES[1:]:
        e = mm["effects"][t]
        true = EFFECT[t] - EFFECT["rule"]
        # the latent shift, seen through rounding and clipping to 1..5: the same sign, within 0.3
        assert e["p"] < 1e-6 and abs(e["difference"] - true) < 0.3 and e["ci"][0] < e["difference"] < e["ci"][1]
    same = mm["effects"]["teacher_summary"]["difference"] - mm["effects"]["teacher_posthoc"]["difference"]
    assert abs(same) < 0.15  # simulated equal
    pairs = {(p["a"], p["b"]): p for p in analysis["r"]["scales"]["interpretability"]["rank_tests"]["pairs"]}
    assert pairs[("teacher_summary", "teacher_posthoc")]["p_holm"] > 0.05
    assert pairs[("rule", "teacher")]["p_holm"] < 0.001
    load = analysis["r"]["scales"]["load"]["mixed_model"]["effects"]["teacher"]
    assert load["difference"] > 0 and load["p"] < 0.001  # less interpretable, more load
    v = analysis["r"]["verification"]
    assert v["rule"]["d_prime"] > v["teacher"]["d_prime"] + 0.5  # detection rises with the effect


def test_the_mixed_model_agrees_with_an_independent_fit(analysis):
    """Balanced design: participant random intercept with item fixed effects gives the same type
    contrasts as crossed participant and item random intercepts."""
    df = _kept_pages(analysis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("interp ~ C(type, Treatment('rule')) + C(item)", df, groups="participant").fit(reml=True)
    mm = analysis["r"]["scales"]["interpretability"]["mixed_model"]["effects"]
    for t in TYPES[1:]:
        assert fit.fe_params[f"C(type, Treatment('rule'))[T.{t}]"] == pytest.approx(mm[t]["difference"], abs=0.03)


def test_rank_tests_equal_scipy_and_holm(analysis):
    df = _kept_pages(analysis)
    means = df.groupby(["participant", "type"])["interp"].mean().round(10).unstack()[list(TYPES)].dropna()
    rt = analysis["r"]["scales"]["interpretability"]["rank_tests"]
    f = stats.friedmanchisquare(*(means[t] for t in TYPES))
    assert rt["statistic"] == pytest.approx(f.statistic) and rt["p"] == pytest.approx(f.pvalue)
    raw = [stats.wilcoxon(means[a], means[b]).pvalue for a, b in itertools.combinations(TYPES, 2)]
    order = np.argsort(raw)
    holm = np.empty(len(raw))
    running = 0.0
    for rank, i in enumerate(order):  # Holm's step-down, by hand
        running = max(running, (len(raw) - rank) * raw[i])
        holm[i] = min(running, 1.0)
    assert [p["p"] for p in rt["pairs"]] == pytest.approx(raw)
    assert [p["p_holm"] for p in rt["pairs"]] == pytest.approx(list(holm))


def test_reliability_equals_independent_computations(analysis):
    df = _kept_pages(analysis)
    block = analysis["r"]["scales"]["interpretability"]
    # Cronbach's α by Hoyt's two-way ANOVA (responses × items): 1 - MS(residual) / MS(responses)
    y = df[list(INTERPRETABILITY)].to_numpy(float)
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_res = ((y - grand) ** 2).sum() - ss_rows - ss_cols
    hoyt = 1 - (ss_res / ((n - 1) * (k - 1))) / (ss_rows / (n - 1))
    assert block["cronbach_alpha"] == pytest.approx(hoyt, rel=1e-9)
    # Krippendorff's α (ordinal) against the krippendorff package: raters × units
    units = sorted(set(zip(df["item"], df["type"])))
    raters = sorted(df["participant"].unique())
    data = np.full((len(raters), len(units)), np.nan)
    ri, ui = {r: i for i, r in enumerate(raters)}, {u: i for i, u in enumerate(units)}
    for row in df.itertuples():
        data[ri[row.participant], ui[(row.item, row.type)]] = row.interp_understand
    want = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert block["krippendorff_alpha"] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_alpha_functions_on_random_data(seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(1, 6, size=(40, 4)).astype(float)
    m[:, 1] = np.clip(m[:, 0] + rng.integers(-1, 2, 40), 1, 5)
    c = np.cov(m, rowvar=False)
    k = m.shape[1]
    assert cronbach_alpha(m) == pytest.approx(k / (k - 1) * (1 - np.trace(c) / c.sum()))
    data = rng.integers(1, 6, size=(6, 15)).astype(float)
    data[rng.random(data.shape) < 0.3] = np.nan
    units = {j: [int(v) for v in data[:, j] if not np.isnan(v)] for j in range(data.shape[1])}
    assert krippendorff_ordinal(units) == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    )


def test_verification_and_bootstrap_equal_counts_from_the_csv(analysis):
    df = _kept_pages(analysis)
    for t in TYPES:
        sub = df[df["type"] == t]
        wrong, right = sub[sub["wrong"] == "1"], sub[sub["wrong"] == "0"]
        hits, fa = (wrong["verify"] == "no").sum(), (right["verify"] == "no").sum()
        v = analysis["r"]["verification"][t]
        want = stats.norm.ppf((hits + 0.5) / (len(wrong) + 1)) - stats.norm.ppf((fa + 0.5) / (len(right) + 1))
        assert v["d_prime"] == pytest.approx(want) == pytest.approx(d_prime(hits, len(wrong), fa, len(right)))
        acc = ((wrong["verify"] == "no").sum() + (right["verify"] == "yes").sum()) / len(sub)
        assert v["accuracy"] == pytest.approx(acc)
        assert v["median_seconds"] == pytest.approx(sub["seconds"].astype(float).median())
        s = analysis["r"]["scales"]["interpretability"]["summary"][t]
        assert s["mean"] == pytest.approx(sub["interp"].mean()) and s["median"] == pytest.approx(sub["interp"].median())
        # the bootstrap interval over participants is about ± 1.96 cluster-robust standard errors
        per = sub.groupby("participant")["interp"].agg(["sum", "count"])
        ratio = per["sum"] / per["count"].mean()
        se = ratio.std(ddof=1) / np.sqrt(len(per)) if per["count"].nunique() == 1 else None
        lo, hi = s["mean_ci"]
        assert lo < s["mean"] < hi
        if se is not None:
            assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_power_by_simulation(analysis):
    study = load_study(analysis["study"])
    null = power(study, [20], dict.fromkeys(TYPES, 0.0), ("rule", "teacher"), reps=60, seed=1)[0]
    big = power(study, [20], {**dict.fromkeys(TYPES, 0.0), "rule": 0.8}, ("rule", "teacher"), reps=60, seed=1)[0]
    assert null["power"] <= 0.15 and big["power"] >= 0.9
    assert null["ci"][0] <= null["power"] <= null["ci"][1]
    out = _cli(
        "power",
        analysis["study"],
        "--compare",
        "rule",
        "teacher",
        "--effect",
        "rule=0.3",
        "--participants",
        20,
        "--participants",
        40,
        "--reps",
        30,
    )
    assert "20 participants: power" in out and "40 participants: power" in out


def test_a_between_participant_study(tmp_path):
    """Between-participant: Kruskal-Wallis and Mann-Whitney U on participants' means (scipy, here
    recomputed), the same exclusions; simulate refuses more participants than free slots."""
    from humanstudy_helpers import make_study
    from tracekd.errors import InputError
    from tracekd.humanstudy.analyze import analyze
    from tracekd.humanstudy.export import open_store, rows
    from tracekd.humanstudy.simulate import simulate

    root = make_sources(tmp_path)
    study, folder = make_study(root, participants=48, items_per_participant=4, design="between", attention_checks=1)
    store = open_store(folder, None)
    with pytest.raises(InputError, match="only 48 participant slot"):
        simulate(study, store, 49, EFFECT, seed=0)
    assert simulate(study, store, None, EFFECT, seed=0) == 48
    r = analyze(study, rows(study, store), boot=200)
    rt = r["scales"]["interpretability"]["rank_tests"]
    assert rt["test"] == "Kruskal-Wallis" and rt["pair_test"] == "Mann-Whitney U"
    long = pd.DataFrame(rows(study, store))
    kept = long[long["participant"].isin(_kept({"long": long.astype(str)}))]
    items = kept[(kept["kind"] == "item") & (kept["attention"] == 0) & kept["question"].isin(list(INTERPRETABILITY))]
    items = items.assign(v=items["value"].astype(int))
    means = items.groupby(["participant", "type"])["v"].mean().round(10).groupby("type").apply(list)
    want = stats.kruskal(*(means[t] for t in TYPES))
    assert rt["statistic"] == pytest.approx(want.statistic) and rt["p"] == pytest.approx(want.pvalue)
    assert r["scales"]["interpretability"]["mixed_model"]["effects"]["teacher"]["difference"] < 0


def test_analyze_before_anyone_answered(tmp_path):
    from humanstudy_helpers import make_study
    from tracekd.humanstudy.analyze import analyze
    from tracekd.humanstudy.export import open_store, rows
    from tracekd.humanstudy.report import findings, write_report

    study, folder = make_study(make_sources(tmp_path))
    r = analyze(study, rows(study, open_store(folder, None)))
    assert r["participants"] == 0 and "scales" not in r
    assert findings(r)[-1] == "Too few participants kept (fewer than 3) for any statistic."
    assert write_report(r, tmp_path / "out")["html"].is_file()
