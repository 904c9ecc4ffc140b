"""The extension points follow one pattern: a `REGISTRY` (name -> entry) filled by `register`,
which refuses a name twice, like the datasets. Conditions, interventions and rescore formats are
such registries, and the CLI's help lists exactly what is registered (model presets and datasets
too): an entry registered before the CLI is built appears in its help, with nothing else added."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tracekd.data import REGISTRY as DATASETS
from tracekd.models.presets import PRESETS
from tracekd.rescore import formats
from tracekd.traces import conditions, interventions
from tracekd.traces.teacher import RESTRICT

SRC = Path(__file__).resolve().parents[1] / "src"

#: registers one more of each kind (when asked), then runs the CLI: its help is built from the registries
SCRIPT = """
import sys

import tracekd.traces.teacher  # tracekd's own conditions, the teacher ones included, registered first
from tracekd.models.presets import PRESETS, ModelSpec
from tracekd.rescore.formats import RescoreFormat, register as register_format
from tracekd.traces.conditions import Condition, register as register_condition
from tracekd.traces.interventions import Intervention, register as register_intervention

if sys.argv[1] == "extra":
    register_condition(Condition("my_condition", "a condition registered here", lambda ex, split: (None, None)))
    register_condition(Condition("my_teacher", "a teacher condition registered here"))
    register_intervention(Intervention("my_intervention", "registered here", lambda ctx: None, applies=("freeform",)))
    PRESETS["my-preset"] = ModelSpec("my-preset", "tiny:llama")
    register_format(RescoreFormat("my-format", "registered here", lambda path, index: [], "paper"))
from tracekd.cli import app

app(sys.argv[2:], prog_name="tracekd")
"""

EXTRA = {
    "rule": ["my_condition"],
    "teacher": ["my_teacher"],
    "intervention": ["my_intervention"],
    "preset": ["my-preset"],
    "format": ["my-format"],
}
NONE: dict[str, list[str]] = {k: [] for k in EXTRA}


def _help(command: str, extra: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "2000", "TERMINAL_WIDTH": "2000", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "extra" if extra else "plain", command, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def _listed(pattern: str, text: str) -> list[str]:
    m = re.search(pattern, text)
    assert m is not None, f"{pattern!r} not in {text[:2000]}"
    return m.group(1).split(", ")


@pytest.mark.parametrize("extra", [False, True], ids=["registered", "one-more-registered"])
def test_the_help_lists_exactly_the_registered_entries(extra):
    more = EXTRA if extra else NONE
    rule = [c.name for c in conditions.REGISTRY.values() if not c.teacher]
    teacher = [c.name for c in conditions.REGISTRY.values() if c.teacher]

    prepare = _help("prepare", extra)
    assert _listed(r"--condition <list\[str\]> (.*?), or all;", prepare) == rule + more["rule"]
    assert _listed(r", or all; (.*?) \(with --teacher\)", prepare) == teacher + more["teacher"]
    assert f"ending in {RESTRICT}" in prepare
    assert _listed(r"--dataset <str> One of: (.*?)\.", prepare) == list(DATASETS)

    intervene = _help("intervene", extra)
    truncated = interventions.groups()["truncate"]
    listed = _listed(r"--interventions <str> Comma-separated: (.*?)\. Rule-based", intervene)
    assert listed == [
        "truncate (each of 0 / 0.25 / 0.5 / 0.75 of the trace)" if n == truncated[0] else n
        for n in [*interventions.REGISTRY, *more["intervention"]]
        if n not in truncated[1:]
    ]
    freeform = [i.name for i in interventions.REGISTRY.values() if i.applies == ("freeform",)]
    assert _listed(r"free-form traces only: (.*?)\.", intervene) == freeform + more["intervention"]
    assert _listed(r"--model <str> Preset \((.*?)\), folder or hub id", intervene) == [*PRESETS, *more["preset"]]

    train = _help("train", extra)
    assert _listed(r"--model <str> Preset \((.*?)\), folder or hub id", train) == [*PRESETS, *more["preset"]]

    rescore = _help("rescore", extra)
    listed = re.search(r"--format <str> Output format, one of: (.*?)\. \[default", rescore).group(1).split("; ")
    assert [f.split(" (")[0] for f in listed] == [*formats.REGISTRY, *more["format"]]


@pytest.mark.parametrize(
    ("register", "entry", "words"),
    [
        (conditions.register, conditions.Condition("correct", "again"), "a condition named 'correct'"),
        (interventions.register, interventions.REGISTRY["own"], "an intervention named 'own'"),
        (formats.register, formats.REGISTRY["trace-check-qa"], "a rescore format named 'trace-check-qa'"),
    ],
    ids=["condition", "intervention", "format"],
)
def test_each_registry_refuses_a_name_twice(register, entry, words):
    before = dict(register.__globals__["REGISTRY"])
    with pytest.raises(ValueError, match=f"{words} is already registered"):
        register(entry)
    assert register.__globals__["REGISTRY"] == before


def test_the_registries_drive_the_checks():
    """What is registered is what the config check and `expand` accept (and what they name when refusing)."""
    from tracekd.traces.teacher import all_conditions, is_teacher_condition, needs_teacher

    assert all_conditions() == tuple(conditions.REGISTRY)
    assert is_teacher_condition("teacher_summary@teacher_correct") and not is_teacher_condition("correct")
    assert needs_teacher("correct@teacher_correct") and not needs_teacher("swapped")
    assert interventions.expand(["truncate", "own"]) == ["own", *interventions.groups()["truncate"]]
    with pytest.raises(ValueError, match=r"choose from own, gold, .*mistake, truncate"):
        interventions.expand(["nope"])


def test_a_condition_registered_here_is_built_by_its_own_function():
    """`make_targets` (and `condition_targets`, plain or restricted) build a condition by its
    registry entry: one registered here needs no other change."""
    from tracekd.data import get_dataset
    from tracekd.traces.render import Trace
    from tracekd.traces.teacher import condition_targets

    label_only = conditions.Condition(
        "label_only", "the gold label, no evidence", lambda ex, split: (Trace(ex.label, None, ex.answers), None)
    )
    conditions.register(label_only)
    try:
        examples = get_dataset("synthetic-babi", size=6).load()
        targets = conditions.make_targets(examples, "label_only", 0, ())
        assert targets == [(Trace(ex.label, None, ex.answers), None) for ex in examples]
        teacher = {ex.id: {"accepted": i % 2 == 0} for i, ex in enumerate(examples)}
        kept, restricted = condition_targets(examples, "label_only@teacher_correct", 0, (), teacher)
        assert kept == examples[::2] and restricted == targets[::2]
    finally:
        conditions.REGISTRY.pop("label_only")
    with pytest.raises(Exception, match="unknown condition 'label_only'"):
        conditions.make_targets(examples, "label_only", 0, ())
