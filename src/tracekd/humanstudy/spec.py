"""The study spec (the YAML `tracekd humanstudy create` reads) and the study file (`study.yaml`, what
it writes: the spec, the items, every trace and its wrong-step variant, and each participant slot's
pages). The questions asked are defined here once; the app, the export and the analysis read them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from tracekd.errors import InputError
from tracekd.jsonio import read_text

STUDY_FILE = "study.yaml"
DB_FILE = "study.db"
LIKERT = (1, 2, 3, 4, 5)

#: interpretability (the paper's dimension), three items so that reliability can be computed
INTERPRETABILITY = {
    "interp_understand": "I understand how this reasoning reaches its answer.",
    "interp_follow": "The steps of this reasoning are easy to follow.",
    "interp_clear": "This reasoning is clear.",
}
AGREE = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree")
#: cognitive load: NASA-TLX mental demand, effort and frustration on the paper's 5-point scale
LOAD = {
    "tlx_mental": "How mentally demanding was it to follow this reasoning?",
    "tlx_effort": "How hard did you have to work to follow this reasoning?",
    "tlx_frustration": "How insecure, discouraged, irritated, stressed or annoyed did you feel while reading it?",
}
LOW_HIGH = ("Very low", "Low", "Moderate", "High", "Very high")
LIKERT_QUESTIONS = {**INTERPRETABILITY, **LOAD}
VERIFY = "verify"  # "Is every step of this reasoning correct?" yes / no / unsure
VERIFY_CHOICES = ("yes", "no", "unsure")
WRONG_STEP = "wrong_step"  # "Which step is wrong?" (a step number; asked when the answer is no)
#: the attention check's instruction and the answer that passes it
ATTENTION_TEXT = (
    "This is an attention check, not a reasoning to judge. To show that you read every page, "
    f"answer \u201c{AGREE[0]}\u201d to the first statement below."
)
ATTENTION_QUESTION, ATTENTION_PASS = "interp_understand", 1
DEMOGRAPHICS = {
    "age": ("18-24", "25-34", "35-44", "45-54", "55-64", "65+", "prefer not to say"),
    "education": ("secondary school", "bachelor", "master", "doctorate", "other", "prefer not to say"),
    "ai_use": ("never", "monthly", "weekly", "daily", "prefer not to say"),
}
DEMOGRAPHICS_LABELS = {
    "age": "Your age",
    "education": "Your highest completed education",
    "ai_use": "How often do you use AI chat assistants?",
}
_TYPE_NAME = re.compile(r"^[A-Za-z0-9_:.-]{1,64}$")

DEFAULT_CONSENT = (
    "You are invited to take part in a research study on how people read the reasoning of AI systems. "
    "You will read short questions with a context and a reasoning, rate each reasoning and say whether "
    "every step of it is correct. It takes about 20 minutes. Your answers are stored without your name; "
    "your Prolific ID is used only to pay you. You may stop at any time."
)
DEFAULT_INSTRUCTIONS = (
    "On each page you see a question, the context it is asked about, and a reasoning that answers it, "
    "split into numbered steps. Read the reasoning, rate it, and say whether every step is correct. "
    "Some reasonings contain a wrong step; if you find one, name its number. Use the Tab key, the arrow "
    "keys and Enter if you prefer the keyboard."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TypeSource(_Strict):
    """Where one trace type's traces come from: a prepared folder (its records' targets: `rule`,
    `teacher`, `teacher_summary`, `teacher_posthoc`), or with `predictions` a model's outputs
    (JSONL with `id`, `output`) on that folder's examples."""

    data: Path
    predictions: Path | None = None


class Prolific(_Strict):
    completion_code: str = Field("TRACEKD", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    redirect: bool = True  # send the participant back to Prolific at the end


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    seed: int = 0
    design: Literal["within", "between"] = "within"
    participants: int = Field(gt=0, le=100_000)
    items_per_participant: int = Field(gt=0, le=500)
    split: Literal["train", "test"] = "test"
    types: dict[str, TypeSource]
    verification_share: float = Field(0.25, ge=0, le=1)  # traces carrying one known-wrong step
    attention_checks: int = Field(2, ge=0, le=10)
    show_answer: bool = True
    consent: str = DEFAULT_CONSENT
    instructions: str = DEFAULT_INSTRUCTIONS
    prolific: Prolific = Prolific()
    allow_anonymous: bool = False  # without PROLIFIC_PID in the URL: a random id (pilots, tests)
    min_seconds_per_page: float = Field(3.0, ge=0)  # analysis: faster medians are implausible

    @field_validator("types")
    @classmethod
    def _types(cls, v: dict[str, TypeSource]) -> dict[str, TypeSource]:
        if not v:
            raise ValueError("name at least one trace type")
        for name in v:
            if not _TYPE_NAME.match(name):
                raise ValueError(f"type name {name!r}: letters, digits and _ : . - only")
        return v


class Trace(_Strict):
    """One trace as shown: numbered steps, then the answer."""

    steps: list[str]
    answer: str


class Wrong(_Strict):
    """The trace with one known-wrong step (recorded, never shown as such)."""

    steps: list[str]
    step: int  # 1-based number of the wrong step
    kind: Literal["wrong_label", "wrong_evidence", "swapped_fact"]


class ShownTrace(_Strict):
    item: str
    type: str
    trace: Trace
    wrong: Wrong


class Item(_Strict):
    question: str
    context: list[str]
    answer: str


class Page(_Strict):
    """One page of a participant's sequence: an item under a type (the wrong variant or not), or an
    attention check (`attention` set)."""

    item: str | None = None
    type: str | None = None
    wrong: bool = False
    attention: int | None = None


class Study(_Strict):
    spec: StudySpec
    balance: dict[str, Any]  # how the design is balanced (item sets, cycle), for the record
    items: dict[str, Item]
    traces: list[ShownTrace]
    plans: list[list[Page]]  # one per participant slot
    _keys: dict[tuple[str | None, str | None], ShownTrace] | None = PrivateAttr(None)

    def trace(self, item: str | None, type_: str | None) -> ShownTrace:
        """The trace shown for an item under a type (an attention page, with neither, has none: KeyError)."""
        return self._by_key()[(item, type_)]

    def _by_key(self) -> dict[tuple[str | None, str | None], ShownTrace]:
        if self._keys is None:
            self._keys = {(t.item, t.type): t for t in self.traces}
        return self._keys


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(
            f"not valid YAML ({getattr(e, 'problem', e)})", path, mark.line + 1 if mark else None
        ) from None


def _validate(model: type[BaseModel], raw: Any, path: Path) -> Any:
    if not isinstance(raw, dict):
        raise InputError("must be a YAML mapping", path)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise InputError(msg, path, key=key or None) from None


def load_spec(path: str | Path) -> StudySpec:
    """The validated spec; paths in `types` are relative to the spec's folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError("study spec not found", path)
    spec = _validate(StudySpec, _yaml(path), path)
    for src in spec.types.values():
        src.data = path.parent / src.data
        if src.predictions is not None:
            src.predictions = path.parent / src.predictions
    return spec


def load_study(folder: str | Path) -> Study:
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise InputError(f"no {STUDY_FILE} here (run `tracekd humanstudy create` first)", folder)
    return _validate(Study, _yaml(path), path)


def study_yaml(study: Study) -> str:
    return yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)
