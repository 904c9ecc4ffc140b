"""Measurement (not speed): how well the free-form step scorer (score/freeform.py) reads traces.

1. Rule-based traces, where the parser gives the truth: every CoTempQA example and 2,000 bAbI
   questions under the five trace conditions in both templates, and the paper's 1,900 published
   trace outputs (real model outputs). Per trace: does the free-form scorer agree with the parser
   on label correctness, on evidence exact-set correctness, and on the set of cited items?
2. Hand-labelled free-form traces (tests/fixtures/freeform): precision and recall of the cited
   items (per item) and of "states the gold label" (per trace), on the development traces the
   scorer was adjusted on and on the held-out ones.

Prints JSON. `python bench/freeform_agreement.py [--quick]` (quick: 300 examples per dataset).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from tracekd.data import get_dataset
from tracekd.prepare import assign_splits
from tracekd.score.freeform import cited, freeform_trace, stated_labels, trace_and_answer
from tracekd.score.rescore import _key, condition_from_name, read_trace_check_qa
from tracekd.score.steps import score_steps
from tracekd.traces.conditions import make_targets
from tracekd.traces.parse import parse
from tracekd.traces.render import render

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURE = ROOT / "tests" / "fixtures" / "freeform"
CONDITIONS = ("correct", "incorrect", "wrong_label", "wrong_evidence", "swapped")


class Tally:
    def __init__(self):
        self.n = self.label = self.exact = self.same = 0
        self.items = self.items_agree = 0

    def add(self, text: str, ex) -> None:
        truth, ours = score_steps(parse(text), ex), score_steps(freeform_trace(text, ex), ex)
        t, o = set(truth["evidence"]["matched"]), set(ours["evidence"]["matched"])
        self.n += 1
        self.label += truth["label_correct"] == ours["label_correct"]
        self.exact += truth["evidence"]["exact"] == ours["evidence"]["exact"]
        self.same += t == o
        self.items += len(ex.context)
        self.items_agree += len(ex.context) - len(t ^ o)

    def result(self) -> dict:
        return {"traces": self.n, "label_agreement": self.label / self.n, "evidence_exact_agreement": self.exact / self.n,
                "cited_set_agreement": self.same / self.n, "item_decisions": self.items,
                "item_agreement": self.items_agree / self.items}


def rendered(name: str, source: Path, limit: int) -> dict:
    ds = get_dataset(name)
    examples = assign_splits(ds.load(str(source)), 42, 0.2)
    if limit < len(examples):
        examples = random.Random(0).sample(examples, limit)
    labels = ds.label_space(examples)
    tally = Tally()
    for condition in CONDITIONS:
        for template in ("paper", "tagged"):
            for ex, (trace, _) in zip(examples, make_targets(examples, condition, 0, labels)):
                tally.add(render(trace, template, ds.label_sentence), ex)
    return {"examples": len(examples), **tally.result()}


def published() -> dict:
    ds = get_dataset("cotempqa")
    index = {_key(ex.question, [c.text for c in ex.context]): ex for ex in ds.read(str(SHARED / "data" / "cotempqa"))}
    tally = Tally()
    for path in sorted((SHARED / "reference-outputs" / "cotempqa" / "evaluation_outputs").glob("*/*.json")):
        if condition_from_name(path.name) == "answer_only":
            continue  # no trace to read
        for ex, prediction in read_trace_check_qa(path, index):
            tally.add(prediction, ds.decompose(ex))
    return tally.result()


def hand_labelled() -> dict:
    examples = {**{e.id: e for e in get_dataset("cotempqa").load(str(SHARED / "data" / "cotempqa"))},
                **{e.id: e for e in get_dataset("babi").load(str(SHARED / "data" / "babi" / "en"))}}
    traces = {(r["set"], r["id"]): r for r in map(json.loads, (FIXTURE / "traces.jsonl").read_text().splitlines())}
    out: dict = {}
    for lab in map(json.loads, (FIXTURE / "labels.jsonl").read_text().splitlines()):
        r = traces[(lab["set"], lab["id"])]
        ex = examples[lab["id"]]
        trace = trace_and_answer(r["trace"])[0]
        got, want = set(cited(trace, ex)), set(lab["cited"])
        said = ex.label in stated_labels(trace, ex)
        for part in (lab["part"], "all"):
            c = out.setdefault(part, {"traces": 0, "tp": 0, "fp": 0, "fn": 0, "label_tp": 0, "label_fp": 0, "label_fn": 0, "label_tn": 0})
            c["traces"] += 1
            c["tp"] += len(got & want)
            c["fp"] += len(got - want)
            c["fn"] += len(want - got)
            key = {(True, True): "label_tp", (True, False): "label_fp", (False, True): "label_fn", (False, False): "label_tn"}
            c[key[(said, lab["label_stated"])]] += 1
    for c in out.values():
        c["evidence_precision"] = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
        c["evidence_recall"] = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
        pos, said = c["label_tp"] + c["label_fn"], c["label_tp"] + c["label_fp"]
        c["label_precision"] = c["label_tp"] / said if said else None
        c["label_recall"] = c["label_tp"] / pos if pos else None
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    t = time.perf_counter()
    result = {
        "rule_based": {
            "cotempqa": rendered("cotempqa", SHARED / "data" / "cotempqa", 300 if quick else 10**9),
            "babi": rendered("babi", SHARED / "data" / "babi" / "en", 300 if quick else 2000),
        },
        "published_outputs": published(),
        "hand_labelled": hand_labelled(),
    }
    result["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
