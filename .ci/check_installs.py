"""CI: prove that each documented install resolves, without installing anything.

For each install below, `pip install --dry-run --ignore-installed --report` runs the documented
command, then the report is checked against the lock file: every locked package resolves at its
locked version, and for a complete lock nothing else is installed.

Metadata only: pip downloads a whole wheel to read its metadata unless the index serves it apart
(PEP 658), which the index here does not for the big wheels (torch, the NVIDIA libraries, vLLM):
a plain dry run fetched about 4.4 GB and took 80-170 s. `--use-feature=fast-deps` makes pip read
each wheel's metadata with HTTP range requests instead (pip falls back to a download where a
server refuses ranges); an sdist (DeepSpeed) is still downloaded and its metadata built.

- cpu: `make setup` (README): requirements.lock, then tracekd. With this machine's pip
  configuration, as `make setup` runs here (a local CPU wheel of torch where there is one; from
  PyPI alone torch 2.13.0 is the CUDA build, which adds NVIDIA packages: listed, not an error).
- gpu: docs/training.md: requirements-gpu.lock with the qlora, vllm and deepspeed extras, resolved against
  PyPI alone (this machine's local wheels and constraints are ignored). The lock is for Linux
  x86_64 and Python 3.11, so this check runs there.

Usage: python .ci/check_installs.py [cpu] [gpu]   (both by default). Exit status 1 on a failure.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
INSTALLS = {
    # name: (lock file, what is installed with it, complete lock, PyPI alone)
    "cpu": ("requirements.lock", ".", False, False),
    "gpu": ("requirements-gpu.lock", ".[qlora,vllm,deepspeed]", True, True),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version
    return pins


def dry_run(lock: str, target: str, pypi_only: bool, report: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        str(report),
        "--use-feature=fast-deps",  # read wheels' metadata by HTTP range requests, not whole downloads
        "-r",
        lock,
        "-e",
        target,
    ]
    env = dict(os.environ)
    if pypi_only:
        env["PIP_CONFIG_FILE"] = os.devnull  # no local indexes, wheels or constraints
        for var in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
            env.pop(var, None)
        cmd += ["--index-url", PYPI]
    return subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)


def check(name: str) -> list[str]:
    lock_file, target, complete, pypi_only = INSTALLS[name]
    if name == "gpu" and (platform.system(), platform.machine(), sys.version_info[:2]) != ("Linux", "x86_64", (3, 11)):
        here = f"{platform.system()} {platform.machine()} with Python {platform.python_version()}"
        return [f"{name}: {lock_file} is for Linux x86_64 with Python 3.11; this is {here}"]
    pins = read_lock(ROOT / lock_file)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        start = time.perf_counter()
        r = dry_run(lock_file, target, pypi_only, report)
        seconds = time.perf_counter() - start
        if r.returncode != 0:
            return [f"{name}: `pip install -r {lock_file} -e '{target}'` does not resolve:\n{r.stderr[-3000:]}"]
        installed = {
            canonical(i["metadata"]["name"]): i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]
        }
    installed.pop("tracekd", None)
    problems = [
        f"{name}: {pkg} resolves to {installed.get(pkg, 'nothing')}, the lock says {version}"
        for pkg, version in sorted(pins.items())
        if installed.get(pkg) != version
    ]
    extra = sorted(f"{pkg}=={v}" for pkg, v in installed.items() if pkg not in pins)
    if extra and complete:
        problems.append(f"{name}: packages outside {lock_file}: {', '.join(extra)}")
    note = f"; also installed (not locked): {', '.join(extra)}" if extra and not complete else ""
    print(
        f"{name}: pip install -r {lock_file} -e '{target}' resolves: {len(installed)} packages, "
        f"{len(pins)} locked{note} ({seconds:.0f} s)"
    )
    return problems


def main() -> None:
    names = sys.argv[1:] or list(INSTALLS)
    problems = [p for n in names for p in check(n)]
    for p in problems:
        print("FAIL " + p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
