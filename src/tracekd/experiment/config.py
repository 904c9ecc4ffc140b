"""Experiment config: YAML validated with pydantic. Errors name the key (or the path).

Relative data paths are resolved against the config file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tracekd.errors import InputError
from tracekd.generate.options import GenerateOptions
from tracekd.teach.options import TeacherOptions
from tracekd.train.options import TrainOptions
from tracekd.traces.render import TEMPLATES
from tracekd.traces.teacher import RESTRICT, all_conditions, known_condition, needs_teacher

BASELINE = "baseline"  # the untrained model, prompted the same way


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    source: str | None = None
    size: int | None = Field(None, ge=1)
    subsets: list[str] | None = None
    ir_rule: str | None = None
    preset: str | None = None
    data_seed: int = 42
    limit_train: int | None = Field(None, ge=1)
    limit_test: int | None = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from tracekd.data import REGISTRY

        if v not in REGISTRY:
            raise ValueError(f"unknown dataset {v!r}; choose one of {', '.join(sorted(REGISTRY))}")
        return v


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # short name used in the run folder and the report
    model: str  # preset, folder or hub id

    @field_validator("model")
    @classmethod
    def _resolvable(cls, v: str) -> str:
        from tracekd.models import resolve

        try:
            resolve(v)
        except InputError as e:
            raise ValueError(e.message) from None
        return v


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    datasets: list[DatasetConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    conditions: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    template: str = "paper"
    train: TrainOptions = Field(default_factory=TrainOptions)
    generate: GenerateOptions = Field(default_factory=GenerateOptions)
    examples_in_report: int = Field(200, ge=0)  # per cell, in the HTML explorer
    teacher: TeacherOptions | None = None  # for teacher conditions and `@teacher_correct` ones

    @field_validator("models", mode="before")
    @classmethod
    def _short_models(cls, v: Any) -> Any:
        # a bare string is a preset / path; its name is itself
        if isinstance(v, list):
            return [{"name": m, "model": m} if isinstance(m, str) else m for m in v]
        return v

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not known_condition(c, extra=(BASELINE,))]
        if bad:
            raise ValueError(f"unknown condition(s) {', '.join(bad)}; choose from "
                             f"{', '.join(all_conditions(extra=(BASELINE,)))} (any of them may end in {RESTRICT})")
        if len(set(v)) != len(v):
            raise ValueError("a condition is listed twice")
        return v

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        if v not in TEMPLATES:
            raise ValueError(f"unknown template {v!r}; choose one of {', '.join(TEMPLATES)}")
        return v

    @model_validator(mode="after")
    def _teacher_block(self) -> ExperimentConfig:
        wanting = [c for c in self.conditions if needs_teacher(c)]
        if wanting and self.teacher is None:
            raise ValueError(f"condition(s) {', '.join(wanting)} need a `teacher:` block")
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


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(f"not valid YAML ({getattr(e, 'problem', e)})", path, None if line is None else line + 1) from None
    if not isinstance(raw, dict):
        raise InputError("the config must be a YAML mapping", path)
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
        if d.source is None:
            continue
        p = Path(d.source)
        resolved = p if p.is_absolute() else (path.parent / p)
        if resolved.exists():
            d.source = str(resolved.resolve())
        elif "/" in d.source and (d.source.startswith((".", "/")) or p.suffix):
            raise InputError(f"datasets[{i}].source: path not found: {resolved}", path)
    return cfg
