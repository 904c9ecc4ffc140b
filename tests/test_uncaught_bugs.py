"""Regression tests for bugs that planted in src/ got through the suite (issue 13).

Each test names the bug it guards against; each was seen to fail with that bug planted.
(The CoTempQA preference for answer-bearing facts that overlap the anchor in time is guarded
in test_loaders_shared.py and test_gold_fixtures.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

from tracekd.data import ContextItem, Example
from tracekd.score.steps import evidence_score, paper_steps, score_steps
from tracekd.traces.conditions import make_targets, wrong_evidence
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace, render

TEMPORAL = "The temporal relation between the event in question and the event in context is: {label}."
CATEGORY = "The category of the question asked is: {label}."
FACTS = (
    "Ann holds the position of mayor from 1990 to 1995.",  # f0 anchor
    "Ann holds the position of senator from 1991 to 1993.",  # f1 answer-bearing
    "Ann holds the position of vice senator in 1992.",  # f2 contains the answer: gold under the paper's rule
    "Ann works for Acme from 1980 to 1982.",
    "Ann attended Oxford in 1975.",
    "Ann works for Initech in 2001.",
)


def _cotempqa_like(evidence: tuple[str, ...]) -> Example:
    return Example(
        "t/1",
        "cotempqa",
        "during",
        "While Ann was holding the position of mayor, which position did Ann hold?",
        tuple(ContextItem(f"f{i}", t) for i, t in enumerate(FACTS)),
        ("senator",),
        label="during",
        evidence=evidence,
        anchor=("f0",),
        answer_facts=("f1",),
    )


def test_exact_evidence_needs_every_cited_item_to_match_the_context():
    """Bug: the exact-set match ignored cited items that match no context fact, so a trace citing
    all gold facts plus an invented one was scored exact."""
    ex = _cotempqa_like(("f0", "f1"))
    gold = (FACTS[0], FACTS[1])
    invented = (*gold, "Ann holds the position of governor from 1990 to 1995.")
    assert evidence_score(gold, ex).exact
    for tolerant in (False, True):
        s = evidence_score(invented, ex, tolerant=tolerant)
        assert not s.exact and s.recall == 1 and s.precision == 2 / 3 and s.unmatched == 1
    out = render(Trace("during", invented, ("senator",)), "paper", TEMPORAL)
    steps = score_steps(parse(out, TEMPORAL), ex)
    assert steps["label_correct"] and not steps["evidence"]["exact"] and not steps["trace_correct"]


def test_wrong_evidence_never_cites_gold_evidence_that_is_not_anchor_or_answer_fact():
    """Bug: wrong evidence protected only the anchor and answer-bearing facts, which under the
    tracekd rule is the whole gold evidence, but under ir_rule=paper misses the over-matched facts
    (here f2, "vice senator")."""
    ex = _cotempqa_like(("f1", "f2"))  # the paper's rule: every fact containing "senator"
    drawn = {c.id for seed in range(200) for c in wrong_evidence(ex, seed).items}
    assert drawn == {"f3", "f4", "f5"}  # every non-gold fact is drawn, and nothing else
    for condition in ("wrong_evidence", "incorrect"):
        for seed in range(50):
            ((trace, pert),) = make_targets([ex], condition, seed, ("equal", "overlap", "during", "mix"))
            assert len(pert["evidence"]) == 2 and not set(trace.evidence) & set(FACTS[:3])


def test_wrong_evidence_under_the_papers_rule_on_real_cotempqa(tmp_path, shared_data):
    """The same bug end to end: `prepare --ir-rule paper` with perturbed conditions."""
    over_matched = 0
    for condition in ("wrong_evidence", "incorrect"):
        out = tmp_path / condition
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracekd",
                "prepare",
                "--dataset",
                "cotempqa",
                "--source",
                shared_data / "cotempqa",
                "--ir-rule",
                "paper",
                "--condition",
                condition,
                "--out",
                out,
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        for split in ("train", "test"):
            for line in (out / f"{split}.jsonl").open():
                rec = json.loads(line)
                text = {c["id"]: c["text"] for c in rec["context"]}
                gold = {text[i] for i in rec["evidence"]}
                # (it may be empty: under this rule every fact of mix/96 contains "Holy Roman Emperor")
                assert not gold & set(rec["target"]["evidence"]), rec["id"]
                over_matched += bool(set(rec["evidence"]) - set(rec["anchor"]) - set(rec["answer_facts"]))
    assert over_matched > 0  # the paper's rule does over-match, so the protection is exercised


def test_the_papers_label_rule_reads_the_first_sentence_only():
    """Bug: the paper's label check accepted the gold label anywhere in the trace; the paper's code
    looks for it in the first sentence only."""
    ex = Example(
        "t/2",
        "babi",
        "qa2",
        "Where is the apple?",
        (ContextItem("1", "Mary took the apple."),),
        ("kitchen",),
        label="two-supporting-facts",
        evidence=("1",),
    )
    later = (
        "<think>The category of the question asked is: counting. I need to use the following facts to answer "
        "the question: ['Mary took the apple.'] so this is two-supporting-facts.</think> <answer>['kitchen']</answer>"
    )
    assert {k: v for k, v in paper_steps(later, ex).items() if k != "by_rule"} == {
        "label_correct": False,
        "evidence_correct": True,
        "trace_correct": False,
    }
    first = later.replace("counting", "two-supporting-facts", 1)
    assert paper_steps(first, ex)["label_correct"] is True


def test_train_masks_the_prompt_by_default(tmp_path):
    """Bug: TrainOptions defaulted to loss on the prompt. Masking was tested only through
    sft_dataset's own default; here the batches train() feeds the model are inspected."""
    from transformers import TrainerCallback

    from tracekd.data.config import DatasetConfig
    from tracekd.models import resolve
    from tracekd.models.loading import load_tokenizer
    from tracekd.prepare import prepare
    from tracekd.traces.records import read_sft_records
    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    class FirstBatch(TrainerCallback):
        batch = None

        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            FirstBatch.batch = next(iter(train_dataloader))

    prepare(DatasetConfig(name="synthetic-babi", size=10, limit_train=4), "correct", "tagged", 0, tmp_path / "data")
    opts = TrainOptions(max_steps=1, batch_size=4, grad_accum=1, warmup=0, save_steps=1000)
    train(tmp_path / "data", "tiny-random", tmp_path / "run", opts, callbacks=[FirstBatch()])
    tok = load_tokenizer(resolve("tiny-random"))
    completions = {r["completion"][0]["content"] + tok.eos_token for r in read_sft_records(tmp_path / "data")}
    batch = FirstBatch.batch
    assert batch["labels"].shape[0] == 4
    for labels, mask in zip(batch["labels"].tolist(), batch["attention_mask"].tolist()):
        labels = labels[: sum(mask)]
        assert labels[0] == -100  # the prompt is masked ...
        trained = [t for t in labels if t != -100]
        assert tok.decode(trained) in completions  # ... and exactly the completion and EOS are trained
