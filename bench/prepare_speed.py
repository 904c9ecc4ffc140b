"""Benchmark: prepare all CoTempQA examples in ../shared for all six conditions.

Prints JSON. Compares tracekd's way (load and decompose once, write each condition) with the
naive way (a fresh `prepare` per condition, re-reading and re-decomposing the data each time),
and times the command-line path a user takes (`tracekd prepare --condition all`, and six one-condition commands).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracekd.data.config import DatasetConfig
from tracekd.prepare import prepare
from tracekd.traces.conditions import CONDITIONS

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "cotempqa"


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    if not SOURCE.is_dir():
        sys.exit(f"benchmark data not found: {SOURCE}")
    opts = DatasetConfig(name="cotempqa", source=str(SOURCE))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def tracekd_way():  # one prepare for all conditions: load once, write each to fast/<condition>
            prepare(opts, list(CONDITIONS), "paper", 0, tmp / "fast")

        def naive_way():
            for c in CONDITIONS:
                prepare(opts, c, "paper", 0, tmp / "naive" / c)

        def cli_way():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tracekd",
                    "prepare",
                    "--dataset",
                    "cotempqa",
                    "--source",
                    str(SOURCE),
                    "--condition",
                    "all",
                    "--out",
                    str(tmp / "cli"),
                ],
                check=True,
                capture_output=True,
            )

        def cli_per_condition():
            for c in CONDITIONS:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "tracekd",
                        "prepare",
                        "--dataset",
                        "cotempqa",
                        "--source",
                        str(SOURCE),
                        "--condition",
                        c,
                        "--out",
                        str(tmp / "cli1" / c),
                    ],
                    check=True,
                    capture_output=True,
                )

        fast = min(timed(tracekd_way) for _ in range(3))
        naive = min(timed(naive_way) for _ in range(2))
        cli = min(timed(cli_way) for _ in range(2))
        cli_each = timed(cli_per_condition)
        same = all(
            (tmp / "fast" / c / f).read_bytes() == (tmp / "cli" / c / f).read_bytes()
            for c in CONDITIONS
            for f in ("train.jsonl", "test.jsonl", "manifest.json")
        )
        n = sum(
            json.loads((tmp / "fast" / c / "manifest.json").read_text())["files"]["train.jsonl"]["records"]
            + json.loads((tmp / "fast" / c / "manifest.json").read_text())["files"]["test.jsonl"]["records"]
            for c in CONDITIONS
        )
    print(
        json.dumps(
            {
                "benchmark": "prepare_cotempqa_all_conditions",
                "examples_per_condition": n // len(CONDITIONS),
                "conditions": len(CONDITIONS),
                "tracekd_load_once_s": round(fast, 3),
                "naive_reload_per_condition_s": round(naive, 3),
                "speedup_vs_naive": round(naive / fast, 2),
                "cli_one_command_all_conditions_s": round(cli, 3),
                "cli_six_commands_s": round(cli_each, 3),
                "cli_outputs_identical": same,
                "target_s": 5.0,
                "meets_target": cli < 5.0 and fast < 5.0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
