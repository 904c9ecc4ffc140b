"""The one error type users see: bad input, named by file and line (or config key)."""

from __future__ import annotations

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
