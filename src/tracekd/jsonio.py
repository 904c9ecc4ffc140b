"""JSON / JSONL reading with line-numbered errors, and atomic writing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tracekd.errors import InputError


_UMASK = os.umask(0)
os.umask(_UMASK)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg}, column {e.colno})", path, lineno) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path, lineno)
            yield lineno, obj


def cut_torn_line(path: str | Path) -> None:
    """Drop a partial last line (a process killed while appending), so the file can be resumed."""
    path = Path(path)
    if not path.is_file():
        return
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)


def read_json_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Read a file that is either one JSON array/object or JSON Lines.

    Yields (line number, record). For a JSON array the line number is where the record starts.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg})", path, e.lineno) from None
        decoder_lines = _record_start_lines(text, len(data))
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise InputError(f"record {i}: expected a JSON object", path, decoder_lines[i])
            yield decoder_lines[i], obj
        return
    yield from read_jsonl(path)


def _record_start_lines(text: str, n: int) -> list[int]:
    """Approximate start line of each top-level array element (for error messages)."""
    lines: list[int] = []
    depth = 0
    line = 1
    in_str = False
    esc = False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth == 2:
                lines.append(line)
        elif ch in "]}":
            depth -= 1
    lines += [line] * (n - len(lines))
    return lines


def dumps_line(obj: Any) -> str:
    """One canonical JSONL line (stable key order as given, UTF-8, no trailing spaces)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


@contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Write to a temporary file beside `path`, then rename over it; on error nothing is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def write_jsonl_atomic(path: str | Path, records: Iterable[Any]) -> str:
    """Write records as JSONL atomically; return the sha256 of the bytes written."""
    h = hashlib.sha256()
    with atomic_open(path, "wb") as f:
        for rec in records:
            b = dumps_line(rec).encode("utf-8")
            h.update(b)
            f.write(b)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
