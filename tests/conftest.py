"""Shared fixtures. Real data is read from ../shared (never copied into the repo)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

# tests never reach the Hugging Face hub: fail fast instead of waiting on the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
# models built or converted for tests (tiny random models, SmolLM2) are cached here between runs
os.environ.setdefault("TRACEKD_CACHE", str(ROOT / ".cache" / "test"))
SHARED = Path(os.environ.get("TRACEKD_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
REFERENCE = SHARED / "reference-outputs" / "cotempqa"
REQUIRE_SHARED = bool(os.environ.get("TRACEKD_REQUIRE_SHARED"))
SKIP_REASON = "real data not available"  # in every skip for missing ../shared (counted at the end)


def _need_shared() -> None:
    if DATA.is_dir():
        return
    if REQUIRE_SHARED:
        pytest.fail(f"real data not found at {DATA} (TRACEKD_REQUIRE_SHARED is set)")
    pytest.skip(f"{SKIP_REASON} at {DATA} (only on developer machines and CI)")


def pytest_report_header(config) -> str:
    if DATA.is_dir():
        return f"tracekd: real data at {DATA}"
    then = "FAIL (TRACEKD_REQUIRE_SHARED is set)" if REQUIRE_SHARED else "are SKIPPED"
    return f"tracekd: NO real data at {DATA}: tests that need it {then}"


def per_test_under_mutmut(fixture_name, config) -> str:
    """A fixture scope: module, but function under mutmut (`make mutation`), which credits a test
    with the functions called while it runs: a module fixture computed during the first test
    would leave the others out, and mutants of what it computes would be run against that test
    only. Use as `@pytest.fixture(scope=per_test_under_mutmut)`."""
    return "function" if "MUTANT_UNDER_TEST" in os.environ else "module"


@pytest.fixture(autouse=True)
def _empty_caches_under_mutmut():
    """Under mutmut: every test starts with the lru caches of the mutated modules empty. mutmut
    runs a mutant against the tests that called its function in an unmutated run; a function
    behind a cache (the bootstrap's resample counts) is called only by the first test that
    fills the cache, and would be credited to that test alone."""
    if "MUTANT_UNDER_TEST" in os.environ:
        from mutation import modules

        for name in modules():
            for value in vars(importlib.import_module(name)).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    _need_shared()
    return DATA


@pytest.fixture(scope="session")
def reference_outputs() -> Path:
    _need_shared()
    return REFERENCE


@pytest.fixture(scope="session")
def cotempqa_examples(shared_data):
    from tracekd.data import get_dataset

    return get_dataset("cotempqa").load(str(shared_data / "cotempqa"))


@pytest.fixture(scope="session")
def babi_examples(shared_data):
    from tracekd.data import get_dataset

    return get_dataset("babi").load(str(shared_data / "babi" / "en"))


@pytest.fixture(scope="session")
def msmarco_examples(shared_data):
    from tracekd.data import get_dataset

    return get_dataset("msmarco").load(str(shared_data / "msmarco" / "ms_marco_v1.1_train_sample200.json"))


@pytest.fixture(scope="session")
def overfit_run(tmp_path_factory):
    """4 synthetic bAbI examples, a tiny random Llama, LoRA trained until it reproduces them."""
    from tracekd.data.config import DatasetConfig
    from tracekd.prepare import prepare
    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    root = tmp_path_factory.mktemp("overfit")
    prepare(DatasetConfig(name="synthetic-babi", size=25, limit_train=4), "correct", "tagged", 0, root / "data")
    opts = TrainOptions(lr=1e-2, max_steps=150, batch_size=4, grad_accum=1, warmup=0, save_steps=1000)
    summary = train(root / "data", "tiny-random", root / "run", opts)
    return root, summary


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Without ../shared a developer run must not look complete: the last line before the totals
    says how many tests did not run (after pytest's list of skip reasons, from -rs)."""
    result = yield
    if DATA.is_dir():
        return result
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SKIP_REASON in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep(
            "!",
            f"{len(skipped)} tests SKIPPED: no real data at {DATA} "
            "(point TRACEKD_SHARED at it; CI sets TRACEKD_REQUIRE_SHARED=1 and fails instead)",
            red=True,
            bold=True,
        )
    elif REQUIRE_SHARED:
        terminalreporter.write_sep(
            "!",
            f"no real data at {DATA} and TRACEKD_REQUIRE_SHARED is set: the tests that need it failed",
            red=True,
            bold=True,
        )
    return result


# Hypothesis: 300 examples per property by default; HYPOTHESIS_PROFILE=thorough for a long search.
from hypothesis import settings  # noqa: E402

settings.register_profile("default", max_examples=300, deadline=None)
settings.register_profile("thorough", max_examples=20000, deadline=None)
# `make mutation` runs the tests once per mutant: fewer examples, the same ones every time
settings.register_profile("mutation", max_examples=100, deadline=None, derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
