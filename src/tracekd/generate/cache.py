"""The response cache: one JSONL line per answered request, keyed by a hash of (example id,
kind of request, teacher, messages, sampling parameters, sample number).

A request whose key is in the cache is never sent again; a reply is appended (flushed and
fsynced) as soon as it arrives, so a run killed at any point resumes where it stopped (a torn
last line is cut off first). Failed requests are not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.jsonio import dumps_line, read_resumable_jsonl


def request_key(
    example_id: str, kind: str, teacher: str, messages: list[dict[str, str]], params: dict[str, Any], sample: int
) -> str:
    blob = json.dumps(
        {"id": example_id, "kind": kind, "teacher": teacher, "messages": messages, "params": params, "sample": sample},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# what a cached reply must hold (`client.Reply`): a hand-edited line is refused at its line number
REPLY_FIELDS: dict[str, tuple[type, ...]] = {
    "content": (str,),
    "reasoning": (str, type(None)),
    "finish_reason": (str, type(None)),
    "completion_tokens": (int, type(None)),
}


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        for lineno, rec in read_resumable_jsonl(self.path):
            if not isinstance(rec.get("key"), str) or not isinstance(rec.get("reply"), dict):
                raise InputError("not a tracekd response-cache line (needs 'key' and 'reply')", self.path, lineno)
            for field, types in REPLY_FIELDS.items():
                if not isinstance(rec["reply"].get(field), types):
                    raise InputError(
                        f"not a tracekd response-cache line: reply.{field} must be "
                        + " or ".join("null" if t is type(None) else t.__name__ for t in types),
                        self.path,
                        lineno,
                    )
            self.records[rec["key"]] = rec

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any]:
        """The record of a cached key (KeyError: not cached)."""
        return self.records[key]

    def put(self, record: dict[str, Any]) -> None:
        with self.lock:
            if record["key"] in self.records:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(dumps_line(record))
                f.flush()
                os.fsync(f.fileno())
            self.records[record["key"]] = record
