"""Reading JSON / JSONL / text with errors that name file and line, and writing atomically.

Reading: bytes are decoded as UTF-8 line by line (a bad byte is an `InputError` naming the line),
JSON strings with lone surrogates ("\\ud800", not Unicode) are refused.

Writing: every file is written beside its target under a temporary name `.<name>.<random>.tmp`,
flushed and fsynced, then renamed over the target; on an error the temporary file is removed and
an `OSError` names the target. `staged()` publishes several files together (all or none, rolled
forward by `recover()` after a kill between the renames). A process killed while writing can
leave `.<name>.<random>.tmp` files: `remove_stale_temps` deletes them (callers hold the folder's
lock, so no live writer owns them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tracekd.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
JOURNAL = ".tracekd-publish.json"


# -- reading ----------------------------------------------------------------------------------------
def _not_utf8(data: bytes, e: UnicodeDecodeError, path: Path, first_line: int) -> InputError:
    line = first_line + data.count(b"\n", 0, e.start)
    column = e.start - data.rfind(b"\n", 0, e.start)
    return InputError(f"not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column})", path, line)


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise InputError("is a folder, not a file" if path.is_dir() else "file not found", path)


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) of a UTF-8 text file."""
    path = Path(path)
    _need_file(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(raw, e, path, lineno) from None


def read_text(path: str | Path) -> str:
    """A whole UTF-8 text file; a bad byte names its line."""
    path = Path(path)
    _need_file(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(data, e, path, 1) from None


def _check_unicode(obj: Any, raw: bytes | str, path: Path, lineno: int | None) -> None:
    """Refuse strings with lone surrogates (only JSON escapes can make them)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not _SURROGATE_ESCAPE.search(raw):
        return
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start : e.end].encode("unicode_escape").decode()
        raise InputError(f"contains a lone surrogate escape ({bad}), which is not Unicode text", path, lineno) from None


def loads(text: str, path: Path, lineno: int | None = None) -> Any:
    """Parse one JSON document; errors name the file and line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg}, column {e.colno})", path, (lineno or 1) + e.lineno - 1) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", path, lineno) from None
    _check_unicode(obj, text, path, lineno)
    return obj


def read_json(path: str | Path) -> Any:
    """One JSON document from a file."""
    path = Path(path)
    return loads(read_text(path), path)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line is an InputError."""
    path = Path(path)
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        obj = loads(line, path, lineno)
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


def read_resumable_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The lines a resumed run appends to, as `read_jsonl` reads them: nothing when the file is not
    there yet; a partial last line (a process killed while appending) is cut off the file first."""
    cut_torn_line(path)
    if Path(path).is_file():
        yield from read_jsonl(path)


def read_json_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Read a file that is either one JSON array of objects or JSON Lines.

    Yields (line number, record). For a JSON array the line number is where the record starts.
    """
    path = Path(path)
    text = read_text(path)
    if text.lstrip().startswith("{") and "\n" in text.strip() and _one_object(text):
        raise InputError("is one JSON object; expected a JSON array of records or JSON Lines (one record a line)", path)
    if not text.lstrip().startswith("["):
        yield from read_jsonl(path)
        return
    data = loads(text, path)
    starts = _record_start_lines(text, len(data))
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise InputError(f"record {i}: expected a JSON object", path, starts[i])
        yield starts[i], obj


def _one_object(text: str) -> bool:
    """The whole text is one JSON object (spread over several lines)."""
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


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


# -- writing --------------------------------------------------------------------------------------
def dumps_line(obj: Any) -> str:
    """One canonical JSONL line (stable key order as given, UTF-8, no trailing spaces)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """An OSError raised in the body without a file name, or naming a temporary file of ours,
    names `path` instead (the CLI prints it)."""
    try:
        yield
    except OSError as e:
        if e.filename is None or _TEMP.match(Path(str(e.filename)).name):
            e.filename, e.filename2 = str(path), None
        raise


@contextmanager
def _temp_beside(path: Path, mode: str) -> Iterator[tuple[IO, Path]]:
    """A temporary file beside `path`, flushed and fsynced when the body ends; removed on error."""
    if path.is_dir():
        raise InputError("is a folder; name a file", path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with naming(path):
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
            with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
                yield f, tmp
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _replace(tmp: Path, path: Path) -> None:
    try:
        with naming(path):
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Write to a temporary file beside `path`, then rename over it; on error nothing is left."""
    path = Path(path)
    with _temp_beside(path, mode) as (f, tmp):
        yield f
    _replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def _json_text(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, _json_text(obj))


def _jsonl_filler(records: Iterable[Any], digest: list[str]) -> Callable[[IO], None]:
    def fill(f) -> None:
        h = hashlib.sha256()
        for rec in records:
            b = dumps_line(rec).encode("utf-8")
            h.update(b)
            f.write(b)
        digest.append(h.hexdigest())

    return fill


def write_jsonl_atomic(path: str | Path, records: Iterable[Any]) -> str:
    """Write records as JSONL atomically; return the sha256 of the bytes written."""
    digest: list[str] = []
    with atomic_open(path, "wb") as f:
        _jsonl_filler(records, digest)(f)
    return digest[0]


def write_folder_atomic(out: str | Path, fill: Callable[[Path], None], marker: str = "config.json") -> Path:
    """Build a folder with `fill(tmp)` under a temporary name beside `out`, then rename it into
    place (with the usual permissions, not mkdtemp's 0700). Two processes may build it at once:
    the one that renames second finds `out/marker` there, drops its copy and uses the winner's."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        fill(tmp)
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / marker).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class Staged:
    """Files written under temporary names beside their targets, published together."""

    def __init__(self) -> None:
        self.moves: list[tuple[Path, Path]] = []

    def _add(self, path: str | Path, mode: str, fill: Callable[[IO], object]) -> None:
        path = Path(path)
        with _temp_beside(path, mode) as (f, tmp):
            fill(f)
        self.moves.append((tmp, path))

    def json(self, path: str | Path, obj: Any) -> None:
        text = _json_text(obj)
        self._add(path, "w", lambda f: f.write(text))

    def jsonl(self, path: str | Path, records: Iterable[Any]) -> str:
        """Stage records as JSONL; return the sha256 of the bytes."""
        digest: list[str] = []
        self._add(path, "wb", _jsonl_filler(records, digest))
        return digest[0]

    def discard(self) -> None:
        for tmp, _ in self.moves:
            tmp.unlink(missing_ok=True)
        self.moves.clear()

    def publish(self, journal: Path | None) -> None:
        """Rename every staged file into place. With a journal, a kill between the renames is
        rolled forward by `recover(journal)`; a Ctrl-C waits until the renames are done."""
        with _deferred_interrupt():
            if journal is not None:
                write_json_atomic(journal, [[str(t), str(p)] for t, p in self.moves])
            for tmp, path in self.moves:
                _replace(tmp, path)
            if journal is not None:
                journal.unlink()
            self.moves.clear()


@contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """A Ctrl-C (SIGINT) in the body takes effect when it ends: a few renames are not left half done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt here


@contextmanager
def staged(journal: Path | None = None) -> Iterator[Staged]:
    """Stage files in the body; publish them all when it ends, or none if it raises."""
    s = Staged()
    try:
        yield s
    except BaseException:
        s.discard()
        raise
    try:
        s.publish(journal)
    except BaseException:
        s.discard()
        raise


def recover(journal: Path) -> bool:
    """Finish a publication a kill interrupted (the renames its journal lists); True if one was."""
    if not journal.is_file():
        return False
    try:
        moves = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        moves = []  # the journal itself was torn: nothing was renamed yet
    for tmp, path in moves:
        if Path(tmp).is_file():
            os.replace(tmp, path)
    journal.unlink()
    return True


def check_published(folder: str | Path) -> None:
    """Refuse a folder whose publication a kill interrupted (its journal, or its parent's for a
    multi-condition prepare, is still there): its files may be a mix of two results."""
    folder = Path(folder)
    for journal in (folder / JOURNAL, folder.parent / JOURNAL):
        if journal.is_file():
            raise InputError(
                "a `tracekd prepare` into this folder was killed while publishing its files, so they may "
                "mix two results; rerun that prepare to finish it",
                journal,
            )


def remove_stale_temps(folder: str | Path, names: Iterable[str] | None = None, recursive: bool = False) -> list[Path]:
    """Delete the temporary files (`.<name>.<random>.tmp`) a killed writer left in `folder`:
    only those of `names` if given, under every subfolder if `recursive`. The caller holds the
    folder's lock. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if names is None else set(names)
    removed = []
    for p in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        m = _TEMP.match(p.name)
        if m and (wanted is None or m["name"] in wanted) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- provenance -----------------------------------------------------------------------------------
def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def check_provenance(record_file: str | Path, produced_by: dict[str, Any], output_exists: bool, fresh: str) -> None:
    """What produced an output (model, adapter / data hashes, options: `produced_by`, JSON
    values) is kept in `record_file` beside it. A resume into an output that another producer
    made, or one without a record, is refused with one line naming what differs and `fresh`
    (how to start fresh); else the record is (re)written. Call it holding the output's lock,
    before writing the output."""
    record_file = Path(record_file)
    current = json.loads(json.dumps(produced_by))
    if output_exists:
        if not record_file.is_file():
            raise InputError(f"resuming, but {record_file.name} (what produced it) is missing; {fresh}", record_file)
        stored, now = _flat(read_json(record_file)), _flat(current)
        differ = [k for k in sorted(set(stored) | set(now)) if stored.get(k, "-") != now.get(k, "-")]
        if differ:
            what = ", ".join(f"{k}: {stored.get(k, '-')!r} (now {now.get(k, '-')!r})" for k in differ[:4])
            more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
            raise InputError(f"made by something else, would mix outputs: {what}{more}; {fresh}", record_file.parent)
        return
    write_json_atomic(record_file, current)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def refuse_overwriting(outputs: Iterable[str | Path | None], inputs: Iterable[str | Path | None]) -> None:
    """No output may be an input (resolved paths: symlinks and hard links included), and no two
    outputs may be one file: an `InputError` naming the output, before anything is written."""
    outs = [Path(p) for p in outputs if p is not None]
    ins = [Path(p) for p in inputs if p is not None]
    for i, out in enumerate(outs):
        for src in ins:
            if _same_file(out, src):
                raise InputError(f"is also an input ({src}); name another output", out)
        for other in outs[:i]:
            if _same_file(out, other):
                raise InputError(f"is named for two outputs (also {other}); name another", out)
