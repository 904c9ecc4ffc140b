"""One dataset as `tracekd prepare`, `tracekd run` (a `datasets:` entry) and the CLI select it.

`DatasetConfig`: which dataset (a registered name), where from (`source`), the data seed (train /
test split, generated data), the test share, limits, and the dataset's own options - given flat,
beside the other keys (`{name: babi, source: ..., preset: paper}`), validated by the dataset's
`Options` model and written back flat. A bad or unknown option is a validation error at its key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_serializer, model_validator
from pydantic_core import PydanticCustomError, ValidationError

from tracekd.data.base import REGISTRY, Dataset, DatasetOptions, get_dataset
from tracekd.errors import InputError, one_of

SEED_MAX = 2**32 - 1  # numpy's RandomState takes seeds 0 .. 2**32 - 1


class DatasetConfig(BaseModel):
    """What selects the examples (independent of condition, template and seed)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: Annotated[str, AfterValidator(one_of(REGISTRY, "dataset"))] = Field(
        description="The dataset (a registered name).", json_schema_extra={"flag": "dataset"}
    )
    source: str | None = Field(None, description="A file, a folder or a hub id.")
    options: Any = Field(None, json_schema_extra={"flag": None})  # the dataset's Options; given flat
    data_seed: int = Field(42, ge=0, le=SEED_MAX, description="Seed of the train/test split and of synthetic data.")
    test_fraction: float = Field(
        0.2, ge=0, le=1, description="Share of each subset held out for test (sources without a split)."
    )
    limit_train: int | None = Field(None, ge=1, description="Keep at most N train examples.")
    limit_test: int | None = Field(None, ge=1, description="Keep at most N test examples.")
    limit_test_per_subset: int | None = Field(
        None, ge=1, description="Keep at most N test examples of each subset (before limit_test)."
    )
    _dataset: Dataset = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        """Keys that are not the config's own are the dataset's options."""
        if not isinstance(data, dict):
            return data
        if not isinstance(data.get("options") or {}, dict):
            raise ValueError(
                f"options: the dataset's options are keys of its entry or a mapping, not {type(data['options']).__name__}"
            )
        own = {k: v for k, v in data.items() if k in cls.model_fields and k != "options"}
        options = {**(data.get("options") or {}), **{k: v for k, v in data.items() if k not in cls.model_fields}}
        return {**own, "options": options}

    @model_validator(mode="after")
    def _build(self) -> DatasetConfig:
        """Build the dataset with its options: a bad one is an error at its own key."""
        try:
            self._dataset = get_dataset(self.name, self.data_seed, **(self.options or {}))
        except InputError as e:
            raise ValidationError.from_exception_data(
                self.__class__.__name__,
                [
                    {
                        "type": PydanticCustomError("dataset_option", "{message}", {"message": e.message}),
                        "loc": (e.key,) if e.key else (),
                        "input": (self.options or {}).get(e.key),
                    }
                ],
            ) from None
        self.options = self._dataset.options
        return self

    @model_serializer(mode="wrap")
    def _dump_flat(self, handler) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in handler(self).items():
            if key == "options":
                out.update(value.model_dump() if isinstance(value, DatasetOptions) else value or {})
            else:
                out[key] = value
        return out

    def dataset(self) -> Dataset:
        """The dataset with these options and this data seed."""
        return self._dataset


def option_fields() -> dict[str, Any]:
    """Every option some registered dataset takes (name -> pydantic field), for the CLI's flags."""
    fields: dict[str, Any] = {}
    for cls in REGISTRY.values():
        for name, field in cls.Options.model_fields.items():
            fields.setdefault(name, field)
    return fields
