"""`tracekd teach` against the local stand-in server (tests/serving.py's FaultProxy answering by
itself): a Ctrl-C cancels the requests in flight at once and keeps the replies that arrived; a
reply with a lone surrogate or invalid UTF-8 is stored safely; a hand-edited cache line with wrong
types is one error naming the line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving import FaultProxy
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.generate.cache import ResponseCache
from tracekd.prepare import prepare


def _body(content: str) -> bytes:
    """A chat completion whose content is `content` as raw JSON text (escapes kept as sent)."""
    head = '{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [{"index": 0, '
    return (
        head + '"finish_reason": "stop", "message": {"role": "assistant", "content": "' + content + '"}}]}'
    ).encode()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("teach") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=40, limit_train=10, limit_test=2), "correct", "paper", 0, d)
    return d


def _args(data: Path, out: Path, url: str, *extra) -> list[str]:
    return [
        sys.executable, "-m", "tracekd", "teach", "--data", str(data), "--out", str(out), "--model", "teacher",
        "--base-url", url, "--max-tokens", "8", "--retry-delay", "0.01", *map(str, extra),
    ]  # fmt: skip


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_ctrl_c_cancels_requests_in_flight_and_keeps_the_replies(tmp_path, data):
    def rule(n, req):
        if n >= 2:
            time.sleep(60)  # replies that would take a minute
        return {"status": 200, "body": _body("kitchen")}

    cache = tmp_path / "out" / "responses.jsonl"
    with FaultProxy(0, rule) as proxy:
        proc = subprocess.Popen(
            _args(data, tmp_path / "out", proxy.url, "--concurrency", 4), stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while not (cache.is_file() and len(_lines(cache)) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.05)
        while len(proxy.chat()) < 6:  # four requests in flight
            time.sleep(0.05)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - start
    assert proc.returncode == 130, err
    assert stopped_in < 5, f"took {stopped_in:.1f} s to stop"
    assert "2 teacher response(s) kept" in err
    assert len(_lines(cache)) == 2


def test_bad_text_in_a_reply_is_stored_safely(tmp_path, data):
    bodies = [_body("kit\\ud800chen"), _body("kitchen").replace(b"kitchen", b"kit\xff\xfechen")]

    def rule(n, req):
        return {"status": 200, "body": bodies[n] if n < len(bodies) else _body("kitchen")}

    with FaultProxy(0, rule) as proxy:
        r = subprocess.run(_args(data, tmp_path / "out", proxy.url, "--concurrency", 1), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        contents = [x["reply"]["content"] for x in _lines(tmp_path / "out" / "responses.jsonl")]
        assert "kit\ufffdchen" in contents and "kit\ufffd\ufffdchen" in contents
        asked = len(proxy.chat())
        again = subprocess.run(_args(data, tmp_path / "out", proxy.url), capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert len(proxy.chat()) == asked  # all cached: nothing asked again


@pytest.mark.parametrize(
    "reply,needle",
    [
        ({"content": 5}, "reply.content must be str"),
        ({"content": "x", "reasoning": ["a"]}, "reply.reasoning must be str or null"),
        ({"content": "x", "completion_tokens": "7"}, "reply.completion_tokens must be int or null"),
    ],
)
def test_a_hand_edited_cache_line_with_wrong_types_names_the_line(tmp_path, reply, needle):
    path = tmp_path / "responses.jsonl"
    path.write_text(
        json.dumps({"key": "a", "reply": {"content": "x"}}) + "\n" + json.dumps({"key": "b", "reply": reply}) + "\n"
    )
    with pytest.raises(InputError) as e:
        ResponseCache(path)
    assert str(e.value).startswith(f"{path}:2: not a tracekd response-cache line: {needle}")
