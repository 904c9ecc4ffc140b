"""Experiment config: YAML validated with pydantic. Errors name the key (or the path).

Everything a run could only find out later is checked here, before anything is written, so
`--dry-run` catches it: each dataset is built with its options (a synthetic dataset needs `size`,
bAbI tasks are qa1-qa20, options a dataset does not take are refused) and its source must exist
(or be a hub id); seeds are distinct numbers from 0 to 2**32 - 1; the training scheduler,
`report_to` and `lora_targets` must exist, and each `train.sft` key must be a field of TRL's
SFTConfig with a value it accepts; duplicate YAML keys are refused. Names that become
folder names (the run's and the models') are letters, digits, `.`, `_` and `-`.

Relative data paths are resolved against the config file's folder. `KEY=VALUE` overrides
(`tracekd run CONFIG train.lr=1e-4 seeds=[0,1]`) change keys before validation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ValidationError

from tracekd.data.config import SEED_MAX, DatasetConfig
from tracekd.errors import InputError, one_of
from tracekd.generate.options import GenerateOptions, ServerOptions
from tracekd.teach.options import TeacherOptions
from tracekd.traces.conditions import BASELINE
from tracekd.traces.render import TEMPLATES
from tracekd.traces.teacher import RESTRICT, all_conditions, known_condition, needs_teacher, split_condition
from tracekd.train.options import TrainOptions, unmatched_lora_target

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _safe_name(v: str) -> str:
    if not _SAFE.fullmatch(v):
        raise ValueError(
            f"{v!r} is not a safe name (it becomes a folder name): use letters, digits, "
            "'.', '_' and '-', start with a letter or digit, at most 100 characters"
        )
    return v


SafeName = Annotated[str, AfterValidator(_safe_name)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX, strict=True)]  # strict: `true` is not seed 1


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeName  # short name used in the run folder and the report
    # a served model (`tracekd generate --backend openai`): asked, never trained, so only its
    # baseline cells run; `model` is then the name the server knows
    server: ServerOptions | None = None
    model: str  # preset, folder or hub id (with `server`: the server's name of the model)

    @field_validator("model")
    @classmethod
    def _resolvable(cls, v: str, info: ValidationInfo) -> str:
        from tracekd.models import resolve

        if info.data.get("server") is not None:
            return v
        try:
            resolve(v)
        except InputError as e:
            raise ValueError(e.message) from None
        return v


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeName
    datasets: list[DatasetConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    conditions: list[str] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    template: Annotated[str, AfterValidator(one_of(TEMPLATES, "template", ordered=True))] = "paper"
    train: TrainOptions = Field(default_factory=TrainOptions)
    generate: GenerateOptions = Field(default_factory=GenerateOptions)
    examples_in_report: int = Field(200, ge=0, strict=True)  # per cell, in the HTML explorer
    teacher: TeacherOptions | None = None  # for teacher conditions and `@teacher_correct` ones
    # `tracekd intervene` on every trained cell after generation (docs/interventions.md); [] : none
    interventions: list[str] = Field(default_factory=list)
    _overrides: list[str] = PrivateAttr(default_factory=list)

    @property
    def overrides(self) -> list[str]:
        """The `KEY=VALUE` overrides applied on top of the file (`load_config`)."""
        return self._overrides

    @field_validator("models", mode="before")
    @classmethod
    def _short_models(cls, v: Any) -> Any:
        # a bare string is a preset, a folder or a hub id; its name is its last part
        if isinstance(v, list):
            return [{"name": m.rstrip("/").rsplit("/", 1)[-1], "model": m} if isinstance(m, str) else m for m in v]
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("a seed is listed twice")
        return v

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not known_condition(c, extra=(BASELINE,))]
        if bad:
            raise ValueError(
                f"unknown condition(s) {', '.join(bad)}; choose from "
                f"{', '.join(all_conditions(extra=(BASELINE,)))} (any of them may end in {RESTRICT})"
            )
        if len(set(v)) != len(v):
            raise ValueError("a condition is listed twice")
        return v

    @field_validator("interventions")
    @classmethod
    def _interventions(cls, v: list[str]) -> list[str]:
        from tracekd.traces.interventions import expand

        expand(v)  # unknown names: ValueError naming them and the choices
        if len(set(v)) != len(v):
            raise ValueError("an intervention is listed twice")
        return v

    @model_validator(mode="after")
    def _teacher_block(self) -> ExperimentConfig:
        wanting = [c for c in self.conditions if needs_teacher(c)]
        if wanting and self.teacher is None:
            raise ValueError(f"condition(s) {', '.join(wanting)} need a `teacher:` block")
        return self

    @model_validator(mode="after")
    def _served_models(self) -> ExperimentConfig:
        if self.generate.backend == "openai":
            raise ValueError(
                "generate.backend: openai is given per model: a `server:` block in its `models:` entry "
                "(the other models are decoded locally)"
            )
        served = [m.name for m in self.models if m.server is not None]
        if served and BASELINE not in {split_condition(c)[0] for c in self.conditions}:
            raise ValueError(
                f"served model(s) {', '.join(served)} are not trained: only baseline cells run for them, "
                "and the conditions have none"
            )
        return self

    @model_validator(mode="after")
    def _test_share(self) -> ExperimentConfig:
        for i, d in enumerate(self.datasets):
            if not 0 < d.test_fraction < 1:
                raise ValueError(
                    f"datasets[{i}].test_fraction: a run trains and tests, so it must be above 0 and below 1 "
                    f"(got {d.test_fraction:g})"
                )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        for what, names in (("models", [m.name for m in self.models]), ("datasets", [d.name for d in self.datasets])):
            if len(set(names)) != len(names):
                raise ValueError(f"two {what} have the same name")
        return self


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error (not silently the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml(text: str, path: Path | None = None, what: str = "") -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(
            f"{what}not valid YAML ({getattr(e, 'problem', e)})",
            path,
            None if line is None or path is None else line + 1,
        ) from None
    except RecursionError:
        raise InputError(f"{what}YAML nested too deeply", path) from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one key of a config from `KEY=VALUE` (torchtune style): KEY is a dotted path (`train.lr`,
    `datasets.0.size`: a number indexes a list), VALUE is YAML (`1e-4`, `[0, 1]`, `{a: 1}`)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"override {item!r} is not KEY=VALUE (e.g. train.lr=1e-4 or seeds=[0,1])")
    value = _yaml(text, what=f"override {item!r}: ")
    *parents, last = key.strip().split(".")
    node: Any = raw
    for part in parents:
        if isinstance(node, list):
            node = node[_index(node, part, item)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise InputError(f"override {item!r}: {part!r} is inside a value that is not a mapping or a list")
    if isinstance(node, list):
        node[_index(node, last, item)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise InputError(f"override {item!r}: {last!r} is inside a value that is not a mapping or a list")


def _index(items: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise InputError(f"override {item!r}: {part!r} is not an index of a list of {len(items)}")
    return int(part)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """The validated config of a YAML file, with `KEY=VALUE` overrides applied (`cfg.overrides`
    keeps them: the run records them in its config.json)."""
    from tracekd.jsonio import read_text

    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    raw = _yaml(read_text(path), path)
    if not isinstance(raw, dict):
        raise InputError("the config must be a YAML mapping", path)
    for item in overrides:
        apply_override(raw, item)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = _where(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise InputError(f"{key}: {msg}" if key else msg, path) from None
    for i, d in enumerate(cfg.datasets):
        _check_dataset(d, path.parent, f"datasets[{i}]", path)
    _check_lora_targets(cfg, path)
    cfg._overrides = list(overrides)
    return cfg


def _check_dataset(d: DatasetConfig, base: Path, where: str, config: Path) -> None:
    """Find the dataset's source (made absolute against `base`); its options were checked when
    the config was validated."""
    try:
        if d.source and (base / d.source).exists():  # base / an absolute path is that path
            d.source = str((base / d.source).resolve())
        d.dataset().check_readable(d.source)
    except InputError as e:
        if e.key == "source" and e.path is not None and d.source is not None:
            raise InputError(f"path not found: {base / d.source}", config, key=f"{where}.source") from None
        raise InputError(e.message, config, key=f"{where}.{e.key}" if e.key else where) from None


def _check_lora_targets(cfg: ExperimentConfig, config: Path) -> None:
    """Each LoRA target must name a module of each model (checked when the model's config is at
    hand: a preset, a folder, a hub id in the local cache)."""
    if cfg.train.full:
        return
    for i, m in enumerate(cfg.models):
        missing = unmatched_lora_target(m.model, cfg.train.lora_targets)
        if missing is not None:
            raise InputError(
                f"model {m.model!r} (models[{i}]) has no module matching {missing!r}",
                config,
                key="train.lora_targets",
            )
