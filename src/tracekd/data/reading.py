"""Helpers of the dataset readers: where a source is (a path or a hub id), typed JSON fields with
errors naming file and line, unique ids, hub datasets with a clear message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tracekd.data.schema import Example
from tracekd.errors import InputError

#: a Hugging Face hub id: `owner/name`
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(source: str | None, dataset: str) -> tuple[str, Path | str]:
    """('path', Path) for an existing file or folder, ('hub', id) for a hub id; otherwise an
    InputError with key `source`."""
    if source is None or source == "":
        raise InputError(f"dataset {dataset!r} needs a source (a file, a folder or a hub id)", key="source")
    p = Path(source)
    if p.exists():
        return "path", p
    if HUB_ID.match(source) and not source.startswith((".", "/")) and not p.suffix:
        return "hub", source
    raise InputError("file not found", p, key="source")


def check_unique_ids(examples: list[Example], where, what: str = "example id") -> None:
    """Two examples with one id would be scored against each other's gold: refuse."""
    seen = set()
    for ex in examples:
        if ex.id in seen:
            raise InputError(f"duplicate {what} {ex.id!r}", where)
        seen.add(ex.id)


def string_list(value: Any, key: str, path, line: int | None, allow_empty: bool = False) -> list[str]:
    """A JSON field that must be a list of non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"field {key!r} must be a list of strings", path, line)
    if not allow_empty and not any(v.strip() for v in value):
        raise InputError(f"field {key!r} has no non-empty string", path, line)
    return value


def record_id(value: Any, key: str, path, line: int | None) -> str:
    """An id field: a non-negative integer or a non-empty string without line breaks."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip() and value == " ".join(value.split()):
        return value
    raise InputError(
        f"field {key!r} must be a non-negative integer or a one-line string, not {json_type(value)}", path, line
    )


def json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def load_hub(hub_id: str, *args: Any, **kwargs: Any) -> Any:
    """`datasets.load_dataset` with a clear message when the hub cannot be reached."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise InputError(f"reading {hub_id!r} needs the `datasets` package") from e
    try:
        return datasets.load_dataset(hub_id, *args, **kwargs)
    except Exception as e:  # network, auth, missing config: all are the user's input problem
        raise InputError(f"could not load hub dataset {hub_id!r}: {type(e).__name__}: {e}") from None
