"""A dataset only this module knows: registered here (with its own options), it runs prepare ->
evaluate -> report, through the Python API and through `tracekd run`'s config, without any other
file naming it. Its label sentence is its own, so the parser must be told it; its answers are
scored by an answer scorer it names; a free-form trace's label step is read with its own lexicon.

The registry refuses a second dataset of the same name, and one that lacks what the pipeline needs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from pydantic import Field
from rich.console import Console

from tracekd.data.base import REGISTRY, Dataset, DatasetOptions, Retrieval, register
from tracekd.data.config import DatasetConfig
from tracekd.data.schema import ContextItem, Example
from tracekd.errors import InputError
from tracekd.experiment.config import load_config
from tracekd.experiment.runner import run_experiment
from tracekd.jsonio import read_jsonl
from tracekd.prepare import prepare
from tracekd.score.evaluate import evaluate
from tracekd.score.freeform import freeform_trace, stated_labels

COLOURS = ("red", "green", "blue", "yellow")
#: how a free-form trace says what is asked about: the toy's own lexicon
LEXICON = {"ball": ("about the ball", "the ball"), "cube": ("about the cube", "the cube")}


class ToyOptions(DatasetOptions):
    size: int = Field(16, ge=4, description="How many toy questions.")
    shout: bool = Field(False, description="Answers in capitals.")


class Toy(Dataset):
    """Questions about the colour of the ball or the cube; the context says both, and a decoy."""

    name = "toy-colours"
    labels = ("ball", "cube")
    label_sentence = "The thing asked about is: {label}."
    label_lexicon = LEXICON
    label_neutral = ("on the ball",)  # an idiom: it states no label
    Options = ToyOptions

    def check_readable(self, source: str | None) -> None:
        if source is not None:
            raise InputError("the toy dataset is generated", key="source")

    def read(self, source: str | None) -> list[Example]:
        out = []
        for i in range(self.options.size):
            thing = self.labels[i % 2]
            ball, cube = COLOURS[i % 4], COLOURS[(i + 1) % 4]
            answer = (
                (ball if thing == "ball" else cube).upper()
                if self.options.shout
                else (ball if thing == "ball" else cube)
            )
            out.append(
                Example(
                    id=f"toy/{i}",
                    dataset=self.name,
                    subset=thing,
                    question=f"What colour is the {thing}?",
                    context=(
                        ContextItem("c0", f"The ball is {ball}."),
                        ContextItem("c1", f"The cube is {cube}."),
                        ContextItem("c2", "The table is brown."),
                    ),
                    answers=(answer,),
                )
            )
        return out

    def classify(self, ex: Example) -> str:
        return ex.subset

    def retrieve(self, ex: Example) -> Retrieval:
        fact = "c0" if ex.subset == "ball" else "c1"
        return Retrieval((fact,), answer_facts=(fact,))


@pytest.fixture(scope="module")
def toy():
    register(Toy)
    yield Toy
    REGISTRY.pop(Toy.name)


def _predict_the_targets(data: Path, out: Path) -> Path:
    """Predictions that are the test split's own completions (its target traces)."""
    out.write_text(
        "".join(
            json.dumps({"id": r["id"], "output": r["completion"][0]["content"]}) + "\n"
            for _, r in read_jsonl(data / "test.jsonl")
        )
    )
    return out


def test_prepare_evaluate_on_a_dataset_registered_here(toy, tmp_path):
    config = DatasetConfig(name="toy-colours", size=20, shout=True, test_fraction=0.25)
    manifests = prepare(config, ["correct", "incorrect"], "paper", 0, tmp_path / "data")
    assert manifests["correct"]["options"]["shout"] is True and manifests["correct"]["options"]["size"] == 20
    assert manifests["correct"]["counts"] == {
        "train": {"total": 16, "subset": {"ball": 8, "cube": 8}, "label": {"ball": 8, "cube": 8}},
        "test": {"total": 4, "subset": {"ball": 2, "cube": 2}, "label": {"ball": 2, "cube": 2}},
    }
    record = next(r for _, r in read_jsonl(tmp_path / "data" / "correct" / "train.jsonl"))
    assert record["completion"][0]["content"].startswith("<think>The thing asked about is: ")
    assert record["answers"][0].isupper()  # the option reached the dataset

    # the correct targets score right on every step: the label is read with the toy's own sentence
    correct = evaluate(
        tmp_path / "data" / "correct",
        _predict_the_targets(tmp_path / "data" / "correct", tmp_path / "c.jsonl"),
        tmp_path / "c.json",
    )
    assert correct["dataset"] == "toy-colours"
    assert correct["answer"]["accuracy"] == 1 and correct["rates"]["trace_accuracy"]["mean"] == 1
    assert correct["rates"]["label_accuracy"]["mean"] == 1
    # the incorrect targets: right answers, wrong labels, wrong evidence (the decoy)
    wrong = evaluate(
        tmp_path / "data" / "incorrect",
        _predict_the_targets(tmp_path / "data" / "incorrect", tmp_path / "i.jsonl"),
        tmp_path / "i.json",
    )
    assert wrong["answer"]["accuracy"] == 1
    assert wrong["rates"]["label_accuracy"]["mean"] == 0 and wrong["rates"]["evidence_accuracy"]["mean"] == 0


def test_its_options_are_checked_like_any_dataset(toy):
    with pytest.raises(Exception, match="size"):
        DatasetConfig(name="toy-colours", size=2)
    with pytest.raises(Exception, match="does not take this option"):
        DatasetConfig(name="toy-colours", preset="paper")


def test_run_with_it_in_a_config(toy, tmp_path):
    """`tracekd run`'s config takes the toy's options flat; the run prepares, trains, generates,
    evaluates and reports it, and config.json records its options."""
    cfg = {
        "name": "toy",
        "datasets": [{"name": "toy-colours", "size": 12, "shout": True, "test_fraction": 0.25}],
        "models": ["tiny-random"],
        "conditions": ["baseline", "correct"],
        "seeds": [0],
        "template": "paper",
        "train": {"max_steps": 1, "batch_size": 4, "grad_accum": 1},
        "generate": {"max_new_tokens": 8},
        "examples_in_report": 2,
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    results = run_experiment(load_config(path), tmp_path / "run", console=Console(file=io.StringIO()))
    assert [(g["dataset"], g["condition"], g["n"]) for g in results["groups"]] == [
        ("toy-colours", "baseline", 4),
        ("toy-colours", "correct", 4),
    ]  # 2 of 6 per subset
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["datasets"][0]
    assert recorded["shout"] is True and recorded["size"] == 12
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| toy-colours | tiny-random | baseline |" in md and "| toy-colours | tiny-random | correct |" in md


def test_the_registry_refuses_a_name_twice(toy):
    with pytest.raises(ValueError, match="already registered"):
        register(Toy)

    class AnotherBabi(Toy):
        name = "babi"

    with pytest.raises(ValueError, match="'babi' is already registered"):
        register(AnotherBabi)
    assert REGISTRY["babi"].__name__ == "Babi"


def test_a_freeform_trace_states_its_label_in_the_toys_own_words(toy):
    """The free-form label step comes from the toy's module alone: "about the ball" states `ball`
    (score/freeform.py names no dataset); its neutral phrase states nothing."""
    ex = Toy(0, size=4).load()[1]  # the cube
    assert ex.label == "cube"
    trace = freeform_trace("<think>This is about the ball, which is green.</think> <answer>['blue']</answer>", ex)
    assert trace.label == "ball" and trace.evidence == ("The ball is green.",) and trace.answers == ("blue",)
    assert freeform_trace("<think>The question is about the cube.</think> blue", ex).label == "cube"
    assert stated_labels("What colour is the cube?", ex) == []  # only the question repeated
    assert stated_labels("Stay on the ball: this is about the cube.", ex) == ["cube"]  # the toy's neutral phrase


def test_the_registry_refuses_a_dataset_without_its_knowledge():
    """A dataset lacking what the pipeline needs is refused when it registers, naming what it lacks."""

    class NoLexicon(Dataset):  # the toy as it was before datasets owned their lexicon
        name = "toy-no-lexicon"
        labels = Toy.labels
        label_sentence = Toy.label_sentence
        read, classify, retrieve = Toy.read, Toy.classify, Toy.retrieve

    with pytest.raises(ValueError, match=r"NoLexicon cannot be registered: it lacks `label_lexicon`"):
        register(NoLexicon)

    class HalfLexicon(Toy):
        name = "toy-half-lexicon"
        label_lexicon: ClassVar[dict] = {"ball": LEXICON["ball"]}  # none for the cube

    with pytest.raises(ValueError, match=r"phrases for every label \(none for cube\)"):
        register(HalfLexicon)

    class NoSentence(Toy):
        name = "toy-no-sentence"
        label_sentence = "The thing asked about."

    with pytest.raises(ValueError, match=r"lacks `label_sentence` \(a string with `\{label\}`\)"):
        register(NoSentence)

    class NoRules(Dataset):
        name = "toy-no-rules"
        labels = Toy.labels
        label_lexicon = LEXICON

    with pytest.raises(ValueError, match="lacks `read`, `classify` and `retrieve`"):
        register(NoRules)
    assert not {"toy-no-lexicon", "toy-half-lexicon", "toy-no-sentence", "toy-no-rules"} & set(REGISTRY)
