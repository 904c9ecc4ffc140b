"""`make mutation`: mutation testing of the scoring core with mutmut, and its score (docs/testing.md).

The modules mutated are `only_mutate` in [tool.mutmut] of pyproject.toml: the one list to edit
when a module moves. mutmut copies src/ to mutants/, mutates those modules there and runs, for
each mutant, the tests of `pytest_add_cli_args_test_selection` that called the mutated function
in an unmutated run (mutmut's own per-function selection; the selection itself lists the fast
test files that cover the five modules). This script runs mutmut one module at a time with few
worker processes, then prints, per module, killed / all mutants, the score and the survivors.

A mutant counts as killed when a test failed or timed out (mutmut's own score); a mutant no test
reaches ("no tests"), a suspicious one or one that crashed the worker counts as surviving.

Usage: python tests/mutation.py [MODULE ...] [--children N] [--score-only]
  MODULE: a dotted name under tracekd (score.stats), or none for every module of only_mutate.
Environment: TRACEKD_SHARED (default: ../shared of this checkout; the tests on the paper's data
need it), HYPOTHESIS_PROFILE (default: `mutation`, tests/conftest.py).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILLED = {"killed", "timeout", "caught by type check"}


def modules() -> list[str]:
    """Dotted module names (tracekd.score.stats) of [tool.mutmut].only_mutate."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in cfg["only_mutate"]]


def mutmut(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("mutmut")), *args], cwd=ROOT, check=True, **kw)


def score(out: str) -> tuple[dict[str, Counter], dict[str, list[str]]]:
    """Per module, the count of each status and the surviving mutants' names, from
    `mutmut results --all true` (lines `tracekd.score.stats.x_wilson__mutmut_3: killed`)."""
    status: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in out.splitlines():
        m = re.match(r"\s*(\S+?)\.(x[_ǁ]\S+): (.+)$", line)
        if not m:
            continue
        module, name, state = m.groups()
        status[module][state] += 1
        if state not in KILLED and state != "not checked":
            survivors[module].append(f"{name} ({state})")
    return status, survivors


def report(status: dict[str, Counter], survivors: dict[str, list[str]]) -> None:
    total = Counter()
    for module, counts in sorted(status.items()):
        n = sum(counts.values()) - counts["not checked"]  # mutmut has not run these yet
        killed = sum(counts[s] for s in KILLED)
        if not n:
            print(f"{module:28} not run yet")
            continue
        total.update({"n": n, "killed": killed})
        others = ", ".join(f"{s} {c}" for s, c in sorted(counts.items()) if s not in KILLED)
        print(f"{module:28} {killed:5d} / {n:5d} killed  {100 * killed / n:5.1f} %  {others}")
        for s in survivors[module]:
            print(f"    {s}")
    if total["n"]:
        print(f"{'all':28} {total['killed']:5d} / {total['n']:5d} killed  {100 * total['killed'] / total['n']:5.1f} %")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("module", nargs="*", help="e.g. score.stats (default: every module of only_mutate)")
    ap.add_argument("--children", type=int, default=int(os.environ.get("MUTATION_CHILDREN", "2")))
    ap.add_argument("--score-only", action="store_true", help="print the score of the last run, run nothing")
    args = ap.parse_args()
    known = modules()
    chosen = [m if m.startswith("tracekd.") else f"tracekd.{m}" for m in args.module] or known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        ap.error(f"not in [tool.mutmut].only_mutate: {', '.join(unknown)}")
    # mutmut runs the tests in mutants/: ../shared is found from there only by name
    os.environ.setdefault("TRACEKD_SHARED", str(ROOT.parent / "shared"))
    os.environ.setdefault("HYPOTHESIS_PROFILE", "mutation")
    if not args.score_only:
        for module in chosen:
            mutmut("run", "--max-children", str(args.children), f"{module}.*")
    status, survivors = score(mutmut("results", "--all", "true", capture_output=True, text=True).stdout)
    report({m: c for m, c in status.items() if m in chosen}, survivors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
