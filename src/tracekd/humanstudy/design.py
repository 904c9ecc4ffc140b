"""Drawing a study: the traces each type shows, their wrong-step variants, and the balanced,
seeded assignment of items and types to participant slots — `tracekd humanstudy create`.

Balance (within-participant design, T types, n items per participant, n a multiple of T): the
drawn items are cut into m sets of n; participant p takes set s and list k (p cycles through the
m·T pairs) and sees item j of its set under type (j + k) mod T. Every participant sees each type
n/T times and no item twice; over each cycle of m·T participants every item is shown under every
type exactly once. Pages are ordered in blocks of T whose type order is row p mod T of a Williams
Latin square. Between-participant design: participant p sees set s under one type, k; every
item is shown under every type once per cycle. m is the largest number of sets the items allow for
which the participants fill whole cycles; a design with none is refused.

Wrong steps (verification items), one per variant, never shown as such: rule-based traces get the
`incorrect` rules' wrong label (the label step) or one wrong-evidence distractor (one evidence
step); free-form traces get a swapped fact (the step closest to a gold fact replaced by a
distractor of the context).
"""

from __future__ import annotations

import math
import random
import re
import shutil
from pathlib import Path

from rapidfuzz import fuzz

from tracekd.data import get_dataset
from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.humanstudy.spec import (
    DB_FILE,
    STUDY_FILE,
    Item,
    Page,
    ShownTrace,
    Study,
    StudySpec,
    Trace,
    TypeSource,
    Wrong,
    study_yaml,
)
from tracekd.jsonio import read_jsonl, write_text_atomic
from tracekd.layout import split_file
from tracekd.traces.conditions import distractors, wrong_label
from tracekd.traces.parse import parse
from tracekd.traces.records import read_sft_records
from tracekd.traces.render import EVIDENCE_SENTENCE

_EVIDENCE = EVIDENCE_SENTENCE.rstrip(": ") + ": "  # each cited fact is a step of its own
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _rng(seed: int, *what: object) -> random.Random:
    return random.Random(":".join(map(str, (seed, *what))))


def _label_sentence(ex: Example) -> str:
    return get_dataset(ex.dataset).label_sentence


def _steps_of_text(text: str) -> list[str]:
    """Free-form reasoning as steps: its lines, each cut into sentences."""
    steps = []
    for line in text.splitlines():
        steps += [s.strip() for s in _SENTENCE.split(line.strip()) if s.strip()]
    return steps or [text.strip() or "(empty)"]


def _rule_steps(ex: Example, label: str | None, evidence: list[str] | tuple[str, ...] | None) -> list[str]:
    """A rule-based trace's steps: its label sentence, then one step per fact it cites."""
    steps = [] if label is None else [_label_sentence(ex).format(label=label)]
    return steps + [_EVIDENCE + e for e in evidence or ()]


def _trace_of(ex: Example, target: dict, answers: tuple[str, ...]) -> tuple[Trace, bool]:
    """(the trace as shown, whether it is rule-based)."""
    answer = ", ".join(answers)
    if target.get("reasoning") is not None:
        return Trace(steps=_steps_of_text(target["reasoning"]), answer=answer), False
    steps = _rule_steps(ex, target.get("label"), target.get("evidence"))
    return (Trace(steps=steps, answer=answer), True) if steps else (Trace(steps=["(no steps)"], answer=answer), False)


def _wrong(ex: Example, trace: Trace, rule: bool, labels: tuple[str, ...], seed: int) -> Wrong:
    """The trace with one step made wrong (see the module docstring). Rule-based: the wrong label
    or one wrong-evidence distractor, even odds when both are possible; free-form, or when neither
    is: a swapped fact. The new step always differs from the one it replaces."""
    rng = _rng(seed, "wrong", ex.id)
    pool = distractors(ex)
    steps = list(trace.steps)
    has_label = rule and not steps[0].startswith(_EVIDENCE)
    first_fact = 1 if has_label else 0
    can_evidence = rule and bool(pool) and len(steps) > first_fact
    if has_label and len(labels) > 1 and (not can_evidence or rng.random() < 0.5):
        new = _label_sentence(ex).format(label=wrong_label(ex, labels, seed))
        if new != steps[0]:  # (a model's own label may already be the drawn one)
            steps[0] = new
            return Wrong(steps=steps, step=1, kind="wrong_label")
    if can_evidence:
        i = rng.randrange(first_fact, len(steps))
        fits = [c.text for c in pool if fuzz.ratio(_EVIDENCE + c.text, steps[i]) < 90]
        if fits:
            steps[i] = _EVIDENCE + rng.choice(fits)
            return Wrong(steps=steps, step=i + 1, kind="wrong_evidence")
    # the step that states a fact of the context most closely (else a random step) gets another fact
    facts = [c.text for c in ex.context]
    scores = [max((fuzz.ratio(s, f) for f in facts), default=0) for s in steps]
    i = max(range(len(steps)), key=lambda j: (scores[j], -j)) if max(scores) >= 60 else rng.randrange(len(steps))
    fits = [c.text for c in pool if fuzz.ratio(c.text, steps[i]) < 90]
    steps[i] = rng.choice(fits) if fits else _other_fact(ex, steps[i], rng)
    return Wrong(steps=steps, step=i + 1, kind="swapped_fact")


def _other_fact(ex: Example, step: str, rng: random.Random) -> str:
    others = [c.text for c in ex.context if fuzz.ratio(c.text, step) < 90]
    if not others:
        raise InputError(f"example {ex.id!r}: no other fact of its context to swap into its trace")
    return rng.choice(others)


def _predictions(path: Path) -> dict[str, str]:
    out = {}
    for lineno, rec in read_jsonl(path):
        if not isinstance(rec.get("id"), str) or not isinstance(rec.get("output"), str):
            raise InputError("prediction needs string 'id' and 'output'", path, lineno)
        out[rec["id"]] = rec["output"]
    return out


def read_type(src: TypeSource, split: str) -> dict[str, tuple[Example, Trace, bool]]:
    """One type's traces by example id: (example, trace, rule-based)."""
    path = src.data / split_file(split)
    records = read_sft_records(src.data, split)
    preds = _predictions(src.predictions) if src.predictions is not None else None
    out = {}
    for lineno, rec in enumerate(records, start=1):
        ex = Example.from_record(rec, path, lineno)
        if preds is not None:
            if ex.id not in preds:
                continue
            parsed = parse(preds[ex.id], _label_sentence(ex))
            answers = parsed.answers or ("(no answer)",)
            steps = _rule_steps(ex, parsed.label, parsed.evidence)
            out[ex.id] = (
                (ex, Trace(steps=steps, answer=", ".join(answers)), True)
                if steps
                else (ex, Trace(steps=_steps_of_text(preds[ex.id]), answer=", ".join(answers)), False)
            )
            continue
        target = rec.get("target")
        if not isinstance(target, dict) or (target.get("label") is None and target.get("reasoning") is None):
            raise InputError("record has no trace to show (an answer-only condition?)", path, lineno)
        out[ex.id] = (ex, *_trace_of(ex, target, tuple(target.get("answers") or ex.answers)))
    if not out:
        raise InputError("no example with a trace to show", src.predictions or path)
    return out


def williams(t: int) -> list[list[int]]:
    """A Williams Latin square of order t (rows: orders of 0..t-1)."""
    first, lo, hi = [0], 1, t - 1
    while len(first) < t:
        first.append(lo)
        lo += 1
        if len(first) < t:
            first.append(hi)
            hi -= 1
    return [[(r + f) % t for f in first] for r in range(t)]


def _item_sets(n_items: int, n: int, types: int, participants: int, design: str, share: float) -> int:
    """m, the number of item sets of n (see the module docstring); refuses what cannot be balanced."""
    if design == "within" and n % types:
        raise InputError(
            f"{n} items per participant cannot show {types} types equally often: "
            f"choose a multiple of {types} (e.g. {max(types, n - n % types)} or {n - n % types + types})",
            key="items_per_participant",
        )
    if n_items < n:
        raise InputError(
            f"only {n_items} items have a trace of every type, fewer than the {n} items per participant",
            key="items_per_participant",
        )
    per_type = n // types if design == "within" else n
    if share > 0 and wrong_count(share, per_type) == 0:
        raise InputError(
            f"a verification share of {share:g} of the {per_type} pages of a type a participant sees gives no "
            f"wrong trace: raise it to at least {0.5 / per_type:.2g} or show more items",
            key="verification_share",
        )
    fits = [m for m in range(n_items // n, 0, -1) if participants % (m * types) == 0]
    if not fits:
        raise InputError(
            f"{participants} participants cannot be balanced: with {types} types every item is shown under "
            f"every type once per cycle of (item sets × {types}) participants, so the number of participants "
            f"must be a multiple of {types} (e.g. {participants - participants % types or types} or "
            f"{participants - participants % types + types})",
            key="participants",
        )
    return fits[0]


def assign(
    items: list[str], types: list[str], n: int, participants: int, design: str, share: float, checks: int, seed: int
) -> tuple[list[list[Page]], dict]:
    """Each participant slot's pages (see the module docstring) and how the design is balanced."""
    t = len(types)
    m = _item_sets(len(items), n, t, participants, design, share)
    pool = list(items)
    _rng(seed, "items").shuffle(pool)
    sets = [pool[s * n : (s + 1) * n] for s in range(m)]
    square = williams(t)
    plans = []
    for p in range(participants):
        s, k = divmod(p % (m * t), t)
        rng = _rng(seed, "participant", p)
        if design == "within":
            by_type: dict[int, list[str]] = {i: [] for i in range(t)}
            for j, item in enumerate(sets[s]):
                by_type[(j + k) % t].append(item)
            for group in by_type.values():
                rng.shuffle(group)
            order = [(item, ti) for b in range(n // t) for ti in square[p % t] for item in [by_type[ti][b]]]
        else:
            shuffled = list(sets[s])
            rng.shuffle(shuffled)
            order = [(item, k) for item in shuffled]
        pages = _with_wrong(order, types, share, rng)
        for a in range(checks):
            pages.insert(round((a + 1) * len(order) / (checks + 1)) + a, Page(attention=a))
        plans.append(pages)
    balance = {"item_sets": m, "items_per_set": n, "cycle": m * t, "items_used": m * n, "items_available": len(items)}
    return plans, balance


def wrong_count(share: float, pages: int) -> int:
    """Wrong variants among a participant's `pages` pages of one type: share × pages, rounded half up."""
    return math.floor(share * pages + 0.5)


def _with_wrong(order: list[tuple[str, int]], types: list[str], share: float, rng: random.Random) -> list[Page]:
    """The same number of wrong variants of each type on a participant's pages: round(share × its pages)."""
    wrong: set[int] = set()
    for ti in sorted({ti for _, ti in order}):
        idx = [i for i, (_, tj) in enumerate(order) if tj == ti]
        wrong.update(rng.sample(idx, wrong_count(share, len(idx))))
    return [Page(item=item, type=types[ti], wrong=i in wrong) for i, (item, ti) in enumerate(order)]


def draw(spec: StudySpec) -> Study:
    """The study of a spec: items with a trace of every type, their variants, the assignment."""
    by_type = {name: read_type(src, spec.split) for name, src in spec.types.items()}
    common = sorted(set.intersection(*(set(v) for v in by_type.values())))
    types = list(spec.types)
    plans, balance = assign(
        common,
        types,
        spec.items_per_participant,
        spec.participants,
        spec.design,
        spec.verification_share,
        spec.attention_checks,
        spec.seed,
    )
    used = sorted({p.item for plan in plans for p in plan if p.item is not None})
    labels: dict[str, tuple[str, ...]] = {}
    items, traces = {}, []
    for item in used:
        ex = by_type[types[0]][item][0]
        items[item] = Item(question=ex.question, context=[c.text for c in ex.context], answer=", ".join(ex.answers))
        for name in types:
            ex_t, trace, rule = by_type[name][item]
            if ex_t.dataset not in labels:
                labels[ex_t.dataset] = get_dataset(ex_t.dataset).label_space([ex_t])
            wrong = _wrong(ex_t, trace, rule, labels[ex_t.dataset], spec.seed)
            traces.append(ShownTrace(item=item, type=name, trace=trace, wrong=wrong))
    return Study(spec=spec, balance=balance, items=items, traces=traces, plans=plans)


def create(spec: StudySpec, out: Path) -> Study:
    """Write the study file and an empty database into `out` (refused if a study is there)."""
    from tracekd.humanstudy.db import Answers

    if (out / STUDY_FILE).exists() or (out / DB_FILE).exists():
        raise InputError("a study is already here (choose a new folder)", out)
    study = draw(spec)
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        Answers(f"sqlite:///{out / DB_FILE}").create()
        write_text_atomic(out / STUDY_FILE, study_yaml(study))
    except BaseException:
        (out / DB_FILE).unlink(missing_ok=True)
        if fresh:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return study
