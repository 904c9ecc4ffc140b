"""Benchmark: the statistics of `tracekd rescore` on the paper's 12 published files.

Prints JSON. tracekd's way: the item bootstrap as one (resamples x items) count matrix times the
per-item sums of every ratio. The naive way: a Python loop over the 2,000 resamples, each drawing
items and summing every ratio's numerator and denominator by fancy indexing. Both take the same
draws from the same seeded generator, so their intervals must agree (`max_ci_endpoint_difference`,
float32 sums against float64 ones). Also timed: `statistics` per condition
(tables, CMH, regression, bootstrap), the statsmodels import, and the whole `tracekd rescore`
command (target: under 3 s, issue 8).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tracekd.rescore.run import rescore
from tracekd.score.evaluate import statistics
from tracekd.score.stats import BOOTSTRAP_RESAMPLES, ItemBootstrap, _cached_counts

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SOURCE = SHARED / "data" / "cotempqa"
FILES = sorted(str(p) for p in (SHARED / "reference-outputs" / "cotempqa" / "evaluation_outputs").glob("*/*.json"))


def ratios(rows: list[dict]) -> tuple[np.ndarray, dict[str, tuple]]:
    y = np.array([r["answer"]["correct"] for r in rows], float)
    label = np.array([r["label_correct"] for r in rows], float)
    ones = np.ones(len(rows))
    return np.array([r["id"] for r in rows]), {
        "answer": (y, ones),
        "label": (label, ones),
        "both": (y * label, ones),
        "given": (y * label, label),
        "given_wrong": (y * (1 - label), 1 - label),
    }


def naive(items: np.ndarray, rs: dict[str, tuple]) -> dict[str, list[float]]:
    keys, codes = np.unique(items, return_inverse=True)
    k = len(keys)
    members = [np.flatnonzero(codes == i) for i in range(k)]
    rng = np.random.default_rng(0)
    boot = {n: [] for n in rs}
    for _ in range(BOOTSTRAP_RESAMPLES):
        idx = np.concatenate([members[i] for i in rng.integers(0, k, k)])
        for n, (num, den) in rs.items():
            d = den[idx].sum()
            boot[n].append(num[idx].sum() / d if d else np.nan)
    return {n: [float(x) for x in np.nanpercentile(v, [2.5, 97.5])] for n, v in boot.items()}


def best_of(fn, times: int = 3):
    best, value = None, None
    for _ in range(times):
        t = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return value, best


def main() -> None:
    if not FILES:
        sys.exit(f"benchmark data not found under {SHARED}")
    rows: dict[str, list] = {}
    rescore("trace-check-qa", "cotempqa", str(SOURCE), FILES, rows_out=rows)
    items, rs = ratios(rows["correct"])

    def fast():
        _cached_counts.cache_clear()
        return ItemBootstrap(items).intervals(rs)

    fast_ci, t_fast = best_of(fast)
    naive_ci, t_naive = best_of(lambda: naive(items, rs), 1)
    diff = max(abs(a - b) for n in rs for a, b in zip(fast_ci[n]["ci95"], naive_ci[n]))
    _, t_stats = best_of(lambda: [statistics({0: v}) for v in rows.values()])
    imports = (
        "import scipy.stats; from statsmodels.stats.contingency_tables import StratifiedTable; "
        "from statsmodels.genmod.generalized_linear_model import GLM"
    )
    _, t_import = best_of(lambda: subprocess.run([sys.executable, "-c", imports], check=True))
    _, t_scipy = best_of(lambda: subprocess.run([sys.executable, "-c", "import scipy.stats"], check=True))
    _, t_cli = best_of(
        lambda: subprocess.run(
            [sys.executable, "-m", "tracekd", "rescore", "--source", str(SOURCE), *FILES],
            check=True,
            capture_output=True,
        )
    )
    print(
        json.dumps(
            {
                "benchmark": "rescore_statistics",
                "outputs_per_condition": len(items),
                "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
                "bootstrap_vectorised_s": round(t_fast, 4),
                "bootstrap_naive_loop_s": round(t_naive, 3),
                "speedup_vs_naive": round(t_naive / t_fast, 1),
                "max_ci_endpoint_difference": round(diff, 4),
                "statistics_3_conditions_s": round(t_stats, 3),
                "statsmodels_import_over_scipy_s": round(t_import - t_scipy, 3),
                "cli_total_s": round(t_cli, 3),
                "target_s": 3.0,
                "meets_target": t_cli < 3.0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
