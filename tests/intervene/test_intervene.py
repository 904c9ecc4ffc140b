"""`tracekd intervene`: the forced texts of the registry, the measures with values computed by hand
on model stand-ins (one copies the last cited fact's object, one ignores the trace), the rows file
(resumed, locked), and `own` reproducing the model's answers with a trained adapter (batched and one
at a time, fp32 and bf16)."""

from __future__ import annotations

import json

import pytest

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.intervene import run as intervene_run
from tracekd.intervene.run import intervene
from tracekd.layout import INTERVENTION_ROWS
from tracekd.lock import folder_lock
from tracekd.prepare import prepare
from tracekd.score.evaluate import load_test_set
from tracekd.score.intervention_outputs import Interventions
from tracekd.traces.conditions import wrong_evidence
from tracekd.traces.interventions import REGISTRY, Context, expand, forced_text, own_body, own_prefix, wrap
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace

ALL_RULE = [
    "own",
    "gold",
    "gold_label",
    "gold_evidence",
    "wrong_label",
    "wrong_evidence",
    "wrong_both",
    "no_trace",
]


# -- the forced texts --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """6 test items of synthetic bAbI qa1 / qa2 (3 each): the answer is the object of the last gold fact."""
    d = tmp_path_factory.mktemp("iv") / "data"
    prepare(
        DatasetConfig(name="synthetic-babi", size=30, subsets=["qa1", "qa2"], test_fraction=0.5),
        "correct",
        "tagged",
        0,
        d,
    )
    examples, ds = load_test_set(d)
    assert [ex.subset for ex in examples] == ["qa1", "qa2"] * 3
    return d, examples, ds


def _ctx(ex, ds, output, template="tagged", **kw):
    return Context(ex, output, parse(output, ds.label_sentence), template, ds.label_sentence, ds.labels, **kw)


def test_forced_texts_tagged(six):
    _, examples, ds = six
    ex = examples[0]
    gold = ex.texts(ex.evidence)
    own = "label: counting\nevidence: Mary went to the moon.\nanswer: moon"
    ctx = _ctx(ex, ds, own)
    assert forced_text("own", ctx) == "label: counting\nevidence: Mary went to the moon.\nanswer:"
    assert forced_text("gold", ctx) == f"label: {ex.label}\nevidence: {gold[0]}\nanswer:"
    assert forced_text("gold_label", ctx) == f"label: {ex.label}\nevidence: Mary went to the moon.\nanswer:"
    assert forced_text("gold_evidence", ctx) == f"label: counting\nevidence: {gold[0]}\nanswer:"
    assert forced_text("no_trace", ctx) == "answer:"
    wrong = [c.text for c in wrong_evidence(ex, 0, examples).items]
    assert forced_text("wrong_evidence", ctx) == f"label: counting\nevidence: {wrong[0]}\nanswer:"
    wrong_label = parse(forced_text("wrong_label", ctx), ds.label_sentence).label
    assert wrong_label != ex.label and wrong_label in ds.labels
    assert parse(forced_text("wrong_both", ctx), ds.label_sentence) == Trace(wrong_label, tuple(wrong), None)
    # seeded: another seed may pick another label, the same seed the same
    assert forced_text("wrong_label", ctx) == forced_text("wrong_label", _ctx(ex, ds, own))
    # truncation counts tokens (here: bytes); 0 is no trace, the answer forced right after
    assert forced_text("truncate@0", ctx) == "answer:"
    body = "label: counting\nevidence: Mary went to the moon."
    assert forced_text("truncate@0.5", ctx) == body[: len(body) // 2] + "\nanswer:"
    assert forced_text("filler", ctx) is None  # free-form traces only


def test_forced_texts_paper_and_freeform(six):
    _, examples, ds = six
    ex = examples[1]
    own = "<think>The category of the question asked is: counting.\nI need to use the following facts to answer the question: ['Mary went to the moon.']</think> <answer>['moon']</answer>"
    ctx = _ctx(ex, ds, own, "paper")
    assert forced_text("own", ctx) == own[: own.index("</think>") + len("</think>")]
    assert forced_text("no_trace", ctx) == "<think></think>"
    gold = forced_text("gold", ctx)
    assert gold.startswith("<think>") and gold.endswith("</think>")
    assert parse(gold + " <answer>['x']</answer>", ds.label_sentence) == Trace(
        ex.label, tuple(ex.texts(ex.evidence)), ("x",)
    )
    free = "<think>Mary went to the moon. So she is there.</think> <answer>['moon']</answer>"
    others = (("other", "<think>John is tall. He sleeps.</think> <answer>['x']</answer>"),)
    fctx = _ctx(ex, ds, free, "tagged", freeform=True, others=others, seed=3)
    assert forced_text("gold", fctx) is None  # rule-based steps: not for free-form traces
    assert forced_text("own", fctx) == "<think>Mary went to the moon. So she is there.</think>"
    assert forced_text("filler", fctx) == wrap(" ..." * len(own_body(free, "paper").encode()), "paper")
    mistake = forced_text("mistake", fctx)
    kept = {"Mary went to the moon.", "So she is there."}
    sentences = set(own_body(mistake, "paper").split(". ")) if mistake else set()
    assert mistake and ("John is tall." in mistake or "He sleeps." in mistake) and len(sentences) == 2
    assert len([s for s in kept if s in mistake]) == 1


def test_cut_points_are_token_boundaries():
    """The text before the answer tokenizes to a prefix of the whole output's tokens (both templates,
    both tokenizer families), so `own` forces exactly the model's own tokens."""
    from tracekd.models import resolve
    from tracekd.models.loading import load_tokenizer

    outputs = {
        "paper": "<think>The category of the question asked is: counting.\nI need to use the following facts to answer the question: ['Mary got the milk.']</think> <answer>['one']</answer>",
        "tagged": "label: counting\nevidence: Mary got the milk.\nanswer: one",
    }
    for model in ("smollm2-135m", "tiny-random"):
        tok = load_tokenizer(resolve(model))
        for form, out in outputs.items():
            whole = tok(out, add_special_tokens=False)["input_ids"]
            prefix = tok(own_prefix(out, form), add_special_tokens=False)["input_ids"]
            assert whole[: len(prefix)] == prefix, (model, form)


def test_expand_and_unknown_names():
    assert expand(["truncate", "own"]) == ["own", "truncate@0", "truncate@0.25", "truncate@0.5", "truncate@0.75"]
    with pytest.raises(ValueError, match="unknown intervention 'nope'"):
        expand(["nope"])
    assert all(i.doc for i in REGISTRY.values())


# -- the measures, on model stand-ins ------------------------------------------------------------------
def _last_object(evidence) -> str:
    return evidence[-1].rstrip(".").split()[-1] if evidence else "nowhere"


class StandIn:
    """A model stand-in: `answer(example id, forced text) -> answer`."""

    def __init__(self, answer, label_sentence):
        self.answer, self.label_sentence = answer, label_sentence

    def close(self):
        self.closed = True

    def generate(self, prompts, max_new_tokens, batch_size, forced=None):
        for key, _ in prompts:
            yield [(key, " " + self.answer(key.split("\t")[0], forced[key]))]


def _run(six, tmp_path, monkeypatch, answer, own_outputs, names):
    data, _, ds = six
    preds = tmp_path / "own.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in own_outputs.items()))
    made = []
    monkeypatch.setattr(
        intervene_run, "make_generator", lambda *a: made.append(StandIn(answer, ds.label_sentence)) or made[-1]
    )
    out = tmp_path / "out"
    m = intervene(data, "tiny-random", out, predictions=preds, interventions=names)
    assert all(getattr(g, "closed", False) for g in made)  # the generator is closed after the stage (vLLM: its engine)
    Interventions.model_validate(m)
    return m, [json.loads(x) for x in (out / INTERVENTION_ROWS).open()]


def _own_outputs(examples, wrong_items, answer_of):
    """Gold label; gold evidence, or on `wrong_items` the wrong evidence `wrong_evidence` draws."""
    out = {}
    for k, ex in enumerate(examples):
        ev = ex.texts(ex.evidence) if k not in wrong_items else [c.text for c in wrong_evidence(ex, 0, examples).items]
        lines = [f"label: {ex.label}", *(f"evidence: {e}" for e in ev), f"answer: {answer_of(ex, ev)}"]
        out[ex.id] = "\n".join(lines)
    return out


def test_copying_stand_in_gives_the_hand_computed_effects(six, tmp_path, monkeypatch):
    """The answer is the object of the last cited fact. Own traces: gold on 4 items, wrong evidence
    on 2 (one per subset; own accuracy 4/6). By hand: gold evidence makes all 6 right (changes: 2,
    both to right); wrong evidence makes all wrong (changes: the 4 right ones, away); the label is
    never read (0 changes, no effect); no trace answers `nowhere` (6 changes, 4 away)."""
    _, examples, ds = six
    own = _own_outputs(examples, {0, 3}, lambda ex, ev: _last_object(ev))

    def copy_last(pid, forced):
        return _last_object(parse(forced, ds.label_sentence).evidence)

    m, rows = _run(six, tmp_path, monkeypatch, copy_last, own, ALL_RULE)
    assert len(rows) == 6 * 8
    iv = m["interventions"]

    def shares(name):
        return tuple(round(iv[name][k]["p"], 4) for k in ("accuracy", "changed", "to_right", "away_from_right"))

    assert shares("own") == (round(4 / 6, 4), 0, 0, 0)
    assert shares("gold") == shares("gold_evidence") == (1, round(2 / 6, 4), round(2 / 6, 4), 0)
    assert shares("wrong_evidence") == shares("wrong_both") == (0, round(4 / 6, 4), 0, round(4 / 6, 4))
    assert shares("gold_label") == shares("wrong_label") == (round(4 / 6, 4), 0, 0, 0)
    assert shares("no_trace") == (0, 1, 0, round(4 / 6, 4))
    assert iv["gold"]["vs_no_trace"]["p"] == 1 and iv["gold"]["vs_no_trace"]["ci95"] == [1, 1]
    assert iv["gold"]["by_subset"]["qa1"] == {"outputs": 3, "accuracy": 1.0, "changed": pytest.approx(1 / 3)}
    ev = m["effects"]["evidence"]
    assert ev["effect"]["p"] == 1
    assert ev["stratified"] == {"better_with_gold": 6, "better_with_wrong": 0, "items": 6, "p": pytest.approx(2 / 64)}
    assert ev["by_subset"]["qa2"]["p"] == pytest.approx(2 / 8)
    lab = m["effects"]["label"]
    assert lab["effect"]["p"] == 0 and lab["stratified"]["p"] is None
    assert m["consistency"] == {"agree": 6, "outputs": 6, "rate": 1.0, "mismatches": []}
    text = "\n".join(m["findings"])
    assert "the evidence step: wrong evidence changed 66.7 % [" in text
    assert "the answers depend on the evidence step" in text
    assert "so the answers do not depend on the label step" in text
    # every row says what was forced and what the model then wrote
    row = next(r for r in rows if r["intervention"] == "gold" and r["id"] == examples[0].id)
    assert row["output"] == row["forced"] + " " + _last_object(examples[0].texts(examples[0].evidence))
    assert row["changed"] and row["answer_correct"] and not row["own_correct"]


def test_ignoring_stand_in_gives_zero_effect_and_says_so(six, tmp_path, monkeypatch):
    """The answer is a function of the question alone (right on qa1, `nowhere` on qa2): nothing moves."""
    _, examples, _ = six
    by_id = {ex.id: ex for ex in examples}

    def ignore(pid, forced):
        ex = by_id[pid]
        return ex.answers[0] if ex.subset == "qa1" else "nowhere"

    own = _own_outputs(examples, {0, 3}, lambda ex, ev: ignore(ex.id, ""))
    m, _ = _run(six, tmp_path, monkeypatch, ignore, own, [*ALL_RULE, "truncate"])
    for name, iv in m["interventions"].items():
        assert iv["changed"]["p"] == 0 and iv["accuracy"]["p"] == 0.5, name
    for step in ("label", "evidence", "trace"):
        assert m["effects"][step]["effect"]["p"] == 0 and m["effects"][step]["stratified"]["p"] is None
    e = m["early_answering"]
    assert [p["fraction"] for p in e["points"]] == [0, 0.25, 0.5, 0.75, 1.0]
    assert e["area_agreement"] == 1.0 and e["area_accuracy"] == 0.5
    text = "\n".join(m["findings"])
    for words in ("the label step", "the evidence step", "the whole trace"):
        assert f"so the answers do not depend on {words}" in text
    assert "area under the agreement curve 1.00" in text


def test_resumes_and_is_locked(six, tmp_path, monkeypatch):
    _, examples, ds = six
    own = _own_outputs(examples, set(), lambda ex, ev: _last_object(ev))
    calls = []

    def copy_last(pid, forced):
        calls.append(pid)
        return _last_object(parse(forced, ds.label_sentence).evidence)

    _run(six, tmp_path, monkeypatch, copy_last, own, ["own"])
    assert len(calls) == 6
    rows = tmp_path / "out" / INTERVENTION_ROWS
    text = rows.read_text()
    lines = text.splitlines(keepends=True)
    rows.write_text("".join(lines[:3]) + lines[3][:20])  # 3 whole rows and a torn one
    calls.clear()
    _, again = _run(six, tmp_path, monkeypatch, copy_last, own, ["own"])
    assert len(calls) == 6 - 3 and len(again) == 6
    assert sorted(json.dumps(r, sort_keys=True) for r in again) == sorted(
        json.dumps(json.loads(x), sort_keys=True) for x in text.splitlines()
    )
    with folder_lock(tmp_path / "out", "test"), pytest.raises(InputError, match="another tracekd process"):
        _run(six, tmp_path, monkeypatch, copy_last, own, ["own", "gold"])
    with pytest.raises(InputError, match="rows of seed 0 are already here"):
        intervene(six[0], "tiny-random", tmp_path / "out", predictions=tmp_path / "own.jsonl", seed=1)


def test_a_resume_from_other_own_outputs_is_refused_and_no_output_is_an_input(six, tmp_path, monkeypatch):
    """The rows record what produced them (model, adapter, data, the model's own outputs, options):
    resuming onto rows made from other own outputs would mix two runs and is refused; an output
    that is an input (the predictions file as OUT's rows) is refused before anything is written."""
    _, examples, _ = six
    own = _own_outputs(examples, set(), lambda ex, ev: _last_object(ev))
    _run(six, tmp_path, monkeypatch, lambda pid, forced: "x", own, ["own"])
    other = {k: v + " " for k, v in own.items()}
    with pytest.raises(InputError, match="would mix outputs: own_outputs"):
        _run(six, tmp_path, monkeypatch, lambda pid, forced: "x", other, ["own"])
    before = (tmp_path / "own.jsonl").read_bytes()
    out = tmp_path / "o2"
    out.mkdir()
    (out / INTERVENTION_ROWS).symlink_to(tmp_path / "own.jsonl")
    with pytest.raises(InputError, match="input"):
        intervene(six[0], "tiny-random", out, predictions=tmp_path / "own.jsonl")
    assert (tmp_path / "own.jsonl").read_bytes() == before


def test_unknown_intervention_is_an_input_error(six, tmp_path):
    with pytest.raises(InputError, match="unknown intervention"):
        intervene(six[0], "tiny-random", tmp_path / "o", interventions=["own", "bogus"])


# -- own: the model's own trace forced back gives its own answer -------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch_size", [5, 1])
def test_own_reproduces_the_overfit_models_answers(overfit_run, tmp_path, precision, batch_size):
    """The overfit tiny adapter writes whole tagged traces; forced back, they give its answers."""
    from tracekd.generate.options import GenerateOptions

    root, _ = overfit_run
    opts = GenerateOptions(max_new_tokens=80, batch_size=batch_size, precision=precision, backend="hf")
    m = intervene(root / "data", "tiny-random", tmp_path, root / "run" / "adapter", None, ["own", "no_trace"], opts)
    own = [json.loads(x) for x in (tmp_path / "predictions.jsonl").open()]
    assert any("answer:" in r["output"] for r in own)  # real traces, not junk
    assert m["consistency"]["mismatches"] == [] and m["consistency"]["outputs"] == len(own)


# -- in the pipeline ---------------------------------------------------------------------------------
PIPELINE = """
name: iv
datasets:
  - {name: synthetic-babi, size: 30, subsets: [qa1, qa2], test_fraction: 0.5}
models: [tiny-random]
conditions: [baseline, answer_only, correct]
template: tagged
train: {max_steps: 2, batch_size: 4, grad_accum: 1, save_steps: 2, lr: 5.0e-3}
generate: {max_new_tokens: 16, batch_size: 8}
interventions: [own, gold, wrong_evidence, no_trace, truncate]
"""


def test_pipeline_runs_interventions_and_reports_them(tmp_path):
    from tracekd.experiment.config import load_config
    from tracekd.experiment.runner import run_experiment
    from tracekd.report.outputs import read_results

    (tmp_path / "iv.yaml").write_text(PIPELINE)
    run_experiment(load_config(tmp_path / "iv.yaml"), tmp_path / "run")
    results = read_results(tmp_path / "run" / "results.json")
    blocks = {g["condition"]: g.get("interventions") for g in results["groups"]}
    assert blocks["baseline"] is None  # untrained: nothing to intervene on
    assert list(blocks["answer_only"]["interventions"]) == ["gold", "no_trace"]
    assert list(blocks["correct"]["interventions"]) == [
        "own",
        "gold",
        "wrong_evidence",
        "no_trace",
        "truncate@0",
        "truncate@0.25",
        "truncate@0.5",
        "truncate@0.75",
    ]
    rows = tmp_path / "run" / "cells" / "synthetic-babi" / "tiny-random" / "correct" / "seed-0" / "interventions"
    assert len((rows / INTERVENTION_ROWS).read_text().splitlines()) == 6 * 8
    md = (tmp_path / "run" / "report.md").read_text()
    assert "<summary>Does the answer depend on the trace? Interventions</summary>" in md
    assert "plots/interventions_synthetic-babi_tiny-random.png" in md
    assert "own trace forced back reproduced" in md  # the findings
    assert "Does the answer depend on the trace?" in (tmp_path / "run" / "report.html").read_text()


def test_config_refuses_an_unknown_intervention(tmp_path):
    from tracekd.experiment.config import load_config

    (tmp_path / "iv.yaml").write_text(PIPELINE.replace("truncate]", "truncat]"))
    with pytest.raises(InputError, match=r"interventions: unknown intervention 'truncat'"):
        load_config(tmp_path / "iv.yaml")


# -- own on SmolLM2: both templates, fp32 and bf16, batched and one at a time --------------------------
SMOL_ITEMS = 24
# a near-tie: logits this close (bf16 resolves a logit of 16-32 to 0.125-0.25)
NEAR_TIE = {"fp32": 0.05, "bf16": 0.25}


@pytest.fixture(scope="module", params=["tagged", "paper"])
def smol_adapter(request, tmp_path_factory):
    """SmolLM2-135M with a quick LoRA adapter (20 steps) that writes the template's traces on synthetic
    bAbI qa1 / qa6 (short traces), and 24 test items."""
    from tracekd.train.options import TrainOptions
    from tracekd.train.sft import train

    root = tmp_path_factory.mktemp(f"smol-{request.param}")
    config = DatasetConfig(name="synthetic-babi", size=120, subsets=["qa1", "qa6"], test_fraction=0.5)
    prepare(config, "correct", request.param, 0, root / "data")
    opts = TrainOptions(lr=1e-3, max_steps=20, batch_size=4, grad_accum=1, warmup=0, save_steps=1000, precision="bf16")
    train(root / "data", "smollm2-135m", root / "run", opts)
    return request.param, root


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_own_reproduces_smollm2_answers(smol_adapter, tmp_path, precision):
    """The answers come back when the model's own trace is forced back, batched (8 rows in flight)
    and one at a time; every mismatch is reported with its logit margin and is a near-tie (the two
    tokens' logits within `NEAR_TIE` after one prefill: prefill-versus-incremental numerics, in bf16
    often an exact tie), never a tokenisation or prefix bug. On 24 items one tie is 4 %: the 99 % is
    measured on more items (the demo's and the study's `own` rows), here at least 90 %."""
    from tracekd.generate.options import GenerateOptions

    template, root = smol_adapter
    preds = tmp_path / "8" / "predictions.jsonl"
    for batch_size in (8, 1):  # one at a time: the same own outputs, forced back alone
        opts = GenerateOptions(
            max_new_tokens=96, batch_size=batch_size, precision=precision, backend="hf", limit=SMOL_ITEMS
        )
        adapter = root / "run" / "adapter"
        m = intervene(
            root / "data",
            "smollm2-135m",
            tmp_path / str(batch_size),
            adapter,
            preds if batch_size == 1 else None,
            ["own"],
            opts,
        )
        own = [json.loads(x) for x in preds.open()]
        opener = "</think>" if template == "paper" else "answer:"
        assert sum(opener in r["output"] for r in own) >= SMOL_ITEMS * 0.9  # the adapter writes the template
        c = m["consistency"]
        assert c["outputs"] == SMOL_ITEMS
        assert all(x["margin"] is not None for x in c["mismatches"])
        assert all(abs(x["margin"]) <= NEAR_TIE[precision] for x in c["mismatches"]), (batch_size, c["mismatches"])
        assert c["rate"] >= 0.9, (batch_size, c["mismatches"])


def test_vllm_gets_forced_prompts_as_token_ids_with_their_own_budget(tmp_path, monkeypatch):
    """vLLM backend: the prompt ids, then the forced text's; the forced tokens count against the budget."""
    from test_large_models import HUB, _adapter, _install, _Recorder
    from tracekd.generate.vllm_backend import VLLMGenerator
    from tracekd.models import resolve
    from tracekd.models.loading import load_tokenizer
    from tracekd.models.prompts import prompt_ids

    rec = _Recorder()
    _install(monkeypatch, rec)
    spec = resolve(HUB)
    gen = VLLMGenerator(spec, _adapter(tmp_path / "a", HUB, r=8))
    msgs = [{"role": "user", "content": "Where is Mary?"}]
    forced = {"a": "label: x\nevidence: Mary went home.\nanswer:"}
    out = dict(x for batch in gen.generate([("a", msgs), ("b", msgs)], 40, 2, forced) for x in batch)
    tok = load_tokenizer(spec)
    plain = prompt_ids(tok, msgs, spec)
    forced_ids = tok(forced["a"], add_special_tokens=False)["input_ids"]
    assert rec.prompts == [{"prompt_token_ids": plain + forced_ids}, {"prompt_token_ids": plain}]
    assert [p.kw["max_tokens"] for p in rec.params[0]] == [40 - len(forced_ids), 40]
    assert set(out) == {"a", "b"}


def test_cli(six, tmp_path):
    import subprocess
    import sys

    def run(*args):
        cmd = [sys.executable, "-m", "tracekd", "intervene", "--data", six[0], "--model", "tiny-random", *args]
        return subprocess.run(list(map(str, cmd)), capture_output=True, text=True)

    r = run("--out", tmp_path / "o", "--interventions", "own,no_trace", "--max-new-tokens", "8", "--limit", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no_trace: accuracy" in r.stdout and f"interventions -> {tmp_path / 'o'}" in r.stdout
    assert len((tmp_path / "o" / INTERVENTION_ROWS).read_text().splitlines()) == 2 * 2
    bad = run("--out", tmp_path / "b", "--interventions", "own,gold_labels")
    assert bad.returncode == 2 and "unknown intervention 'gold_labels'" in bad.stderr
    assert not (tmp_path / "b").exists()  # nothing written
    # a chat server cannot continue forced token ids: no server flag is offered
    shown = run("--help")
    flags = {line.split()[1] for line in shown.stdout.splitlines() if line.lstrip("│ ").startswith("--")}
    assert shown.returncode == 0 and {"--max-new-tokens", "--batch-size", "--precision", "--limit"} <= flags
    assert not flags & {"--base-url", "--api-key-env", "--concurrency", "--timeout", "--request-seed"}
    refused = run("--out", tmp_path / "s", "--base-url", "http://x")
    assert refused.returncode == 2 and "--base-url" in refused.stderr
