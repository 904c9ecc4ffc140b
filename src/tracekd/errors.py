"""The one error type users see: bad input, named by file and line (or config key)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input. The CLI prints it as one line and exits with code 2."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return where + self.message
