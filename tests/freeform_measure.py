"""How well the free-form step scorer (score/freeform.py) reads traces: shared by
tests/score/test_freeform.py (on samples, with assertions) and bench/freeform_agreement.py (the full
measurement behind docs/scoring.md).

1. Agreement with the parser where the parser gives the truth (rule-based traces): per trace, do
   the two agree on each step of the metric table (`score.metrics.steps()`) (right / wrong / does not apply), and on
   the set of cited items?
2. Hand-labelled free-form traces (tests/fixtures/freeform): the hand labels (items cited, gold
   label stated) give each trace's true steps through the same `score_steps`; per step, precision
   and recall of "the step is right", and per item of "the item is cited".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tracekd.data.base import REGISTRY
from tracekd.data.schema import Example
from tracekd.score import metrics
from tracekd.score.freeform import cited, freeform_trace, stated_labels, trace_and_answer
from tracekd.score.steps import score_steps
from tracekd.traces.conditions import make_targets
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace, render

FIXTURE = Path(__file__).parent / "fixtures" / "freeform"
RULE_CONDITIONS = ("correct", "incorrect", "wrong_label", "wrong_evidence", "swapped")


def rendered(ds, examples: list[Example], conditions: Iterable[str] = RULE_CONDITIONS) -> Iterator[tuple[str, Example]]:
    """Every example's rule-based trace under each condition, in both templates."""
    labels = ds.label_space(examples)
    for condition in conditions:
        for template in ("paper", "tagged"):
            for ex, (trace, _) in zip(examples, make_targets(examples, condition, 0, labels)):
                yield render(trace, template, ds.label_sentence), ex


def _flags(row: dict) -> dict[str, bool | None]:
    return {m.step: m.of(row) for m in metrics.steps()}


def agreement(traces: Iterable[tuple[str, Example]]) -> dict:
    """Share of traces on which the free-form scorer and the parser agree, per step and on the
    cited set; and per item (cited or not)."""
    n = items = items_agree = same_set = 0
    steps = dict.fromkeys((m.step for m in metrics.steps()), 0)
    for text, ex in traces:
        sentence = REGISTRY[ex.dataset].label_sentence
        truth, ours = score_steps(parse(text, sentence), ex), score_steps(freeform_trace(text, ex, sentence), ex)
        t, o = set(truth["evidence"]["matched"]), set(ours["evidence"]["matched"])
        n += 1
        for step, (a, b) in zip(steps, zip(_flags(truth).values(), _flags(ours).values())):
            steps[step] += a == b
        same_set += t == o
        items += len(ex.context)
        items_agree += len(ex.context) - len(t ^ o)
    return {
        "traces": n,
        **{f"{k}_agreement": v / n for k, v in steps.items()},
        "cited_set_agreement": same_set / n,
        "item_decisions": items,
        "item_agreement": items_agree / items,
    }


def _pr(tp: int, fp: int, fn: int) -> dict:
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def hand_labelled(examples: dict[str, Example]) -> dict[str, dict]:
    """Per part (dev, held-out, all): item-level citation counts, label-stated counts and per step
    the counts of "step right" (scorer vs hand), with precision and recall."""
    traces = {
        (r["set"], r["id"]): r["trace"] for r in map(json.loads, (FIXTURE / "traces.jsonl").read_text().splitlines())
    }
    counts: dict[str, dict] = {}
    for lab in map(json.loads, (FIXTURE / "labels.jsonl").read_text().splitlines()):
        ex = examples[lab["id"]]
        trace = trace_and_answer(traces[(lab["set"], lab["id"])])[0]
        got, want = set(cited(trace, ex)), set(lab["cited"])
        said = ex.label in stated_labels(trace, ex)
        texts = {c.id: c.text for c in ex.context}
        hand = _flags(
            score_steps(
                Trace(ex.label if lab["label_stated"] else None, tuple(texts[i] for i in sorted(want)), None), ex
            )
        )
        ours = _flags(score_steps(freeform_trace(traces[(lab["set"], lab["id"])], ex), ex))
        for part in (lab["part"], "all"):
            c = counts.setdefault(
                part,
                {
                    "traces": 0,
                    "items": [0, 0, 0],
                    "label_stated": [0, 0, 0, 0],
                    "steps": {m.step: [0, 0, 0, 0] for m in metrics.steps()},
                },
            )
            c["traces"] += 1
            for i, v in enumerate((len(got & want), len(got - want), len(want - got))):
                c["items"][i] += v
            c["label_stated"][
                [
                    said and lab["label_stated"],
                    said and not lab["label_stated"],
                    lab["label_stated"] and not said,
                    True,
                ].index(True)
            ] += 1
            for s in (m.step for m in metrics.steps()):
                if hand[s] is not None:  # the step applies (the same example: hand and ours agree on that)
                    c["steps"][s][
                        [hand[s] and ours[s], ours[s] and not hand[s], hand[s] and not ours[s], True].index(True)
                    ] += 1
    return {
        part: {
            "traces": c["traces"],
            "items": _pr(*c["items"]),
            "label_stated": {**_pr(*c["label_stated"][:3]), "tn": c["label_stated"][3]},
            "steps": {s: {**_pr(*v[:3]), "tn": v[3]} for s, v in c["steps"].items()},
        }
        for part, c in counts.items()
    }


def fixture_examples(shared_data: Path) -> dict[str, Example]:
    """The examples the hand-labelled traces answer, from ../shared/data."""
    from tracekd.data import get_dataset

    return {
        **{e.id: e for e in get_dataset("cotempqa").load(str(shared_data / "cotempqa"))},
        **{e.id: e for e in get_dataset("babi").load(str(shared_data / "babi" / "en"))},
    }
