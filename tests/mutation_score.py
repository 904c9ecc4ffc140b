"""Print the mutation score of each mutated module from mutmut's results (`make mutation`).

Reads `mutmut results --all true` (one line per mutant: `module.x_function__mutmut_N: status`)
and prints, per module, killed / all mutants, the score, and the surviving mutants' names (what
docs/testing.md explains). A mutant that timed out counts as killed, as mutmut counts it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check"}
# the score is over the mutants that were run (`not checked`: mutmut has not run them yet)


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
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
    total = Counter()
    for module, counts in sorted(status.items()):
        n, killed = sum(counts.values()) - counts["not checked"], sum(counts[s] for s in KILLED)
        if not n:
            print(f"{module:28} not run yet")
            continue
        total.update({"n": n, "killed": killed})
        print(f"{module:28} {killed:5d} / {n:5d} killed  {100 * killed / n:5.1f} %  " + ", ".join(
            f"{s} {c}" for s, c in sorted(counts.items()) if s not in KILLED))
        for s in survivors[module]:
            print(f"    {s}")
    if total["n"]:
        print(f"{'all':28} {total['killed']:5d} / {total['n']:5d} killed  {100 * total['killed'] / total['n']:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
