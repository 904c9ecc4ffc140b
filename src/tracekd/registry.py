"""The one pattern of tracekd's extension points: a registry, name -> entry, that takes a name once.

Datasets, conditions, interventions and rescore formats keep their entries in a `Registry`
(`REGISTRY` of their module), added by their module's `register`; the CLI's choices and help, the
config's checks and the error messages read it (the datasets' `register` also refuses a dataset
that lacks what the pipeline needs)."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """Entries by name, in the order they were added; `add` refuses a name twice."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def add(self, name: str, entry: T) -> T:
        """Add `entry` under `name`, which must be new."""
        if name in self:
            holder = getattr(self[name], "__qualname__", None)  # a registered class is named
            raise ValueError(f"{self.what} named {name!r} is already registered" + (f" ({holder})" if holder else ""))
        self[name] = entry
        return entry
