"""The one error type users see: bad input, named by file and line (or config key)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path


class InputError(Exception):
    """Bad user input. The CLI prints it as one line and exits with code 2.

    `key` names the option or config key at fault (a dataset option such as `ir_rule`); the
    config loader puts the key's full path in front of it."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None, key: str | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        if self.key is not None:
            where += f"{self.key}: "
        return where + self.message


def one_of(choices: Collection[str], what: str, ordered: bool = False) -> Callable[[str], str]:
    """A validator (pydantic `AfterValidator`): the value must be one of `choices` - a live
    collection, such as a registry that grows - else a ValueError naming them (sorted, unless
    `ordered`)."""

    def check(value: str) -> str:
        if value not in choices:
            names = list(choices) if ordered else sorted(choices)
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(names)}")
        return value

    return check
