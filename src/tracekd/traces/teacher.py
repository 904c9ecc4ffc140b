"""Teacher traces as SFT conditions, and the files `tracekd teach` writes.

Conditions (the paper's R1 family; targets are `<think>trace</think> <answer>[gold answers]</answer>`):

- teacher          the teacher's own reasoning trace (the kept sample's)
- teacher_summary  a summary of that trace (by the teacher or a second model)
- teacher_posthoc  the teacher's post-hoc explanation of its answer (a second turn)
- teacher_swapped  another problem's teacher trace: a seeded derangement, so no example keeps its
                   own (within each subset when every subset has two or more, as the paper's
                   code did per category; else over the whole split)

Only examples whose teacher answer was kept (teacher-correct) have a teacher trace, so these
conditions train and test on that subset, as the paper's R1 conditions did. Any other condition
can be restricted to the same subset with the suffix `@teacher_correct` (`correct@teacher_correct`,
`answer_only@teacher_correct`, ...): the paper's controls, which separate the kind of trace from
the selection of problems.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.jsonio import read_json, read_jsonl
from tracekd.layout import TEACH_SUMMARY, TEACHER_TRACES
from tracekd.traces.conditions import REGISTRY, Condition, make_targets, register
from tracekd.traces.render import Trace

# the teacher conditions, registered beside the rule-based ones, in their order
for _name, _doc in (
    ("teacher", "the teacher's own reasoning trace"),
    ("teacher_summary", "a summary of the teacher's trace"),
    ("teacher_posthoc", "the teacher's post-hoc explanation of its answer"),
    ("teacher_swapped", "another problem's teacher trace (a seeded derangement)"),
):
    register(Condition(_name, _doc))
RESTRICT = "@teacher_correct"  # suffix restricting any condition to the teacher-correct subset

#: the teacher.jsonl field each teacher condition trains on, and the `tracekd teach` option that fills it
_TEXT = {
    "teacher": ("trace", None),
    "teacher_swapped": ("trace", None),
    "teacher_summary": ("summary", "--summary"),
    "teacher_posthoc": ("posthoc", "--posthoc"),
}


def split_condition(condition: str) -> tuple[str, bool]:
    """(base condition, restricted to the teacher-correct subset)."""
    if condition.endswith(RESTRICT):
        return condition[: -len(RESTRICT)], True
    return condition, False


def is_teacher_condition(condition: str) -> bool:
    """Conditions whose targets are teacher traces (free text)."""
    c = REGISTRY.get(split_condition(condition)[0])
    return c is not None and c.teacher


def needs_teacher(condition: str) -> bool:
    return split_condition(condition)[1] or is_teacher_condition(condition)


def all_conditions(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Base conditions: `extra` (e.g. the experiment's baseline), then the registered ones
    (rule-based, teacher)."""
    return (*extra, *REGISTRY)


def known_condition(condition: str, extra: tuple[str, ...] = ()) -> bool:
    """A base condition, or one with `@teacher_correct`."""
    return split_condition(condition)[0] in all_conditions(extra)


def check_condition(condition: str, extra: tuple[str, ...] = ()) -> None:
    if not known_condition(condition, extra):
        raise InputError(
            f"unknown condition {condition!r}; choose one of {', '.join(all_conditions(extra))} "
            f"(any of them may end in {RESTRICT})"
        )


def read_teacher(folder: str | Path) -> dict[str, dict[str, Any]]:
    """teacher.jsonl of a `tracekd teach` folder, by example id."""
    path = Path(folder) / TEACHER_TRACES
    if not path.is_file():
        raise InputError(f"no {TEACHER_TRACES} in the teacher folder (run `tracekd teach` first)", folder)
    rows = {}
    for lineno, rec in read_jsonl(path):
        if not isinstance(rec.get("id"), str) or not isinstance(rec.get("accepted"), bool):
            raise InputError("not a teacher record (needs 'id' and 'accepted')", path, lineno)
        rows[rec["id"]] = rec
    return rows


def teacher_summary(folder: str | Path) -> dict[str, Any]:
    """teach_summary.json (the teacher and its acceptance), for manifests and reports."""
    path = Path(folder) / TEACH_SUMMARY
    return read_json(path) if path.is_file() else {}


def derangement(n: int, rng: random.Random) -> list[int]:
    """A uniformly random permutation without fixed points (rejection sampling; n >= 2)."""
    while True:  # each draw succeeds with probability ~1/e: the loop ends after ~2.7 draws on average
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def _swap_partners(examples: list[Example], seed: int) -> dict[str, Example]:
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.subset, []).append(ex)
    if len(examples) < 2:
        raise InputError("teacher_swapped needs at least two teacher-correct examples in each split")
    if any(len(g) < 2 for g in groups.values()):
        groups = {"": examples}
    partners: dict[str, Example] = {}
    for name, group in sorted(groups.items()):
        perm = derangement(len(group), random.Random(f"{seed}:teacher_swapped:{name}"))
        partners.update((ex.id, group[p]) for ex, p in zip(group, perm))
    return partners


def condition_targets(
    examples: list[Example],
    condition: str,
    seed: int,
    labels: tuple[str, ...],
    teacher: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[Example], list[tuple[Trace, dict | None]]]:
    """The examples a condition keeps and their (target trace, perturbation record).

    Rule-based conditions keep every example (`make_targets`); teacher conditions and restricted
    ones keep the teacher-correct examples."""
    check_condition(condition)
    base, _restricted = split_condition(condition)
    if not needs_teacher(condition):
        return examples, make_targets(examples, condition, seed, labels)
    if teacher is None:
        raise InputError(
            f"condition {condition!r} needs teacher traces: give the folder `tracekd teach` wrote (--teacher)"
        )
    missing = [ex.id for ex in examples if ex.id not in teacher]
    if missing:
        raise InputError(
            f"{len(missing)} example(s) have no teacher record (first: {missing[0]!r}); "
            "run `tracekd teach` on the same data"
        )
    kept = [ex for ex in examples if teacher[ex.id]["accepted"]]
    if not REGISTRY[base].teacher:  # a rule-based condition restricted to the teacher-correct examples
        return kept, make_targets(kept, base, seed, labels)
    field, option = _TEXT[base]
    absent = [ex.id for ex in kept if not isinstance(teacher[ex.id].get(field), str)]
    if absent:
        raise InputError(
            f"condition {condition!r} needs the teacher's {field} of every kept example "
            f"({absent[0]!r} has none): run `tracekd teach` with {option}"
        )
    if base == "teacher_swapped":
        partners = _swap_partners(kept, seed)
        return kept, [
            (Trace(None, None, ex.answers, teacher[partners[ex.id].id]["trace"]), {"swapped_with": partners[ex.id].id})
            for ex in kept
        ]
    return kept, [(Trace(None, None, ex.answers, teacher[ex.id][field]), None) for ex in kept]


_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S)


def split_reasoning(content: str, reasoning: str | None) -> tuple[str | None, str]:
    """(reasoning, answer text) of a reply: the server's reasoning field when it gives one, else
    `<think>...</think>` in the content (also a closing tag alone, for templates that open the
    block in the prompt, and an unclosed block cut off by the token limit); else no reasoning."""
    if reasoning and reasoning.strip():
        return reasoning.strip(), content.strip()
    m = _THINK_RE.search(content)
    if m:
        return m.group(1).strip(), (content[: m.start()] + content[m.end() :]).strip()
    if "</think>" in content:
        before, after = content.split("</think>", 1)
        return before.strip(), after.strip()
    if "<think>" in content:
        before, after = content.split("<think>", 1)
        return after.strip(), before.strip()
    return None, content.strip()
