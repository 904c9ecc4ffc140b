"""Chat completions from an OpenAI-compatible server with the `openai` client (vLLM, `transformers
serve`, llama.cpp's server, hosted APIs): the `openai` backend of `generate.chat`.

At most `concurrency` requests are in flight, and a failed one is retried with exponential
backoff (doubling from `retry_delay`, capped at 30 s, `Retry-After` honoured) on 408 / 409 / 429 /
5xx, timeouts, refused connections and malformed bodies; after `max_retries` retries, or on any
other refusal (401, 404, ...), it raises an InputError naming the server's URL. The API key is read
from the environment variable the endpoint names (unset: no key, as local servers take any).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

from tracekd.errors import InputError
from tracekd.generate.chat import Endpoint, Keep, Reply, Request

MAX_DELAY = 30.0
RETRY_STATUS = (408, 409, 429)  # and every 5xx


class Malformed(Exception):
    """The server answered 200 with a body that is not a chat completion."""


_SURROGATE = re.compile("[\ud800-\udfff]")


@overload
def clean_text(text: str) -> str: ...
@overload
def clean_text(text: str | None) -> str | None: ...
def clean_text(text: str | None) -> str | None:
    """Text that can be stored as UTF-8: a lone surrogate (a JSON escape such as "\\ud800", which is
    not Unicode) becomes U+FFFD, as an invalid UTF-8 byte of the body does when it is decoded."""
    return text if text is None else _SURROGATE.sub("\ufffd", text)


def _parse(raw: Any) -> Any:
    """The chat completion of a raw HTTP response, its body decoded as UTF-8 with bad bytes
    replaced, built as leniently as the openai client builds it (`_reply` checks what it needs)."""
    from openai.types.chat import ChatCompletion

    try:
        data = json.loads(raw.content.decode("utf-8", errors="replace"))
    except ValueError as e:
        raise Malformed(f"the body is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise Malformed(f"the body is not a JSON object ({str(data)[:120]!r})")
    return ChatCompletion.construct(**data)


def _reply(resp: Any) -> Reply:
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise Malformed(f"no choices in the response ({str(resp)[:120]!r})")
    msg = getattr(choices[0], "message", None)
    content = getattr(msg, "content", None)
    extra = getattr(msg, "model_extra", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    if msg is None or not isinstance(content, (str, type(None))) or not isinstance(reasoning, (str, type(None))):
        raise Malformed("the first choice has no text message")
    if content is None and reasoning is None:
        raise Malformed("the message has neither content nor reasoning")
    usage = getattr(resp, "usage", None)
    return Reply(
        clean_text(content or ""),
        clean_text(reasoning),
        getattr(choices[0], "finish_reason", None),
        getattr(usage, "completion_tokens", None),
    )


class ServerBackend:
    """Chat completions from an OpenAI-compatible server (with `serve`, one tracekd starts:
    `transformers serve` on 127.0.0.1, its log in `workdir`/server.log)."""

    def __init__(self, endpoint: Endpoint, workdir: Path):
        import openai

        self.endpoint = endpoint
        self.server = None
        self.sampling_body: dict[str, Any] = {}
        base_url, self.model = endpoint.base_url, endpoint.model
        if endpoint.serve:
            from tracekd.generate.serve import LocalServer
            from tracekd.models.loading import model_path
            from tracekd.models.presets import resolve

            folder = model_path(resolve(endpoint.model))
            self.server = LocalServer(folder, workdir / "server.log").start()
            base_url, self.model = self.server.url, folder
            self.sampling_body = sampling_body(Path(folder))
        self.url = base_url or endpoint.where
        key = os.environ.get(endpoint.api_key_env) or "none"  # local servers take any key
        self.client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=endpoint.timeout)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _delay(self, attempt: int, error: Exception) -> float:
        headers = getattr(getattr(error, "response", None), "headers", None) or {}
        try:
            after = float(headers.get("retry-after", ""))
        except ValueError:
            after = None
        base = min(MAX_DELAY, self.endpoint.retry_delay * 2**attempt)
        if after is not None and 0 <= after <= 60:
            return max(after, base)
        return base * (0.75 + 0.5 * random.random())

    def ask(self, req: Request) -> Reply:
        import openai

        last: Exception | None = None
        for attempt in range(self.endpoint.max_retries + 1):
            try:
                extra = self.sampling_body if req.params.get("temperature", 0) > 0 else None
                raw = self.client.chat.completions.with_raw_response.create(
                    # the messages are plain dicts of role and content: the client's TypedDicts at run time
                    model=self.model,
                    messages=req.messages,  # type: ignore[arg-type]
                    extra_body=extra,
                    **req.params,
                )
                return _reply(_parse(raw))
            except openai.APIStatusError as e:
                if e.status_code not in RETRY_STATUS and e.status_code < 500:
                    hint = f"; is the key in ${self.endpoint.api_key_env}?" if e.status_code in (401, 403) else ""
                    raise InputError(
                        f"the {self.endpoint.role} server at {self.url} refused the request "
                        f"(HTTP {e.status_code}: {_short(e)}){hint}"
                    ) from None
                last = e
            except (openai.APIConnectionError, Malformed, json.JSONDecodeError) as e:
                last = e
            if attempt < self.endpoint.max_retries:
                time.sleep(self._delay(attempt, last))
        tries = self.endpoint.max_retries + 1
        if isinstance(last, openai.APIConnectionError):
            what = "timed out" if isinstance(last, openai.APITimeoutError) else "cannot be reached"
            raise InputError(f"the {self.endpoint.role} server at {self.url} {what} ({tries} tries); is it running?")
        if isinstance(last, openai.APIStatusError):
            raise InputError(
                f"the {self.endpoint.role} server at {self.url} kept failing (HTTP {last.status_code}: {_short(last)}; {tries} tries)"
            )
        raise InputError(
            f"the {self.endpoint.role} server at {self.url} kept sending malformed responses ({_short(last)}; {tries} tries)"
        )

    def complete(self, requests: list[Request], keep: Keep | None = None) -> Iterator[tuple[Request, Reply]]:
        """Replies as they arrive, at most `concurrency` requests in flight, each passed to `keep`
        by the thread that received it (so none is lost however the caller stops). The first
        failure stops new requests and is raised once those in flight are done. A caller that
        stops early (Ctrl-C) does not wait: the requests in flight are abandoned with their
        threads (daemons), and the replies that arrived are kept."""
        if not requests:
            return
        pending = deque(requests)
        results: queue.Queue = queue.Queue()
        stop = threading.Event()
        lock = threading.Lock()

        def work() -> None:
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    req = pending.popleft()
                try:
                    reply = self.ask(req)
                    if keep is not None:
                        keep(req, reply)
                except BaseException as e:  # handed to the caller's thread
                    stop.set()
                    results.put((req, None, e))
                    return
                results.put((req, reply, None))

        threads = [
            threading.Thread(target=work, name="tracekd-chat", daemon=True)
            for _ in range(min(self.endpoint.concurrency, len(requests)))
        ]
        for t in threads:
            t.start()
        try:
            for _ in requests:
                req, reply, error = results.get()
                if error is not None:
                    for t in threads:  # the requests in flight end (their replies are kept)
                        t.join()
                    raise error
                yield req, reply
        finally:
            stop.set()


def sampling_body(folder: Path) -> dict[str, Any]:
    """What makes `transformers serve` sample: it takes `temperature` but keeps the model's
    `do_sample` (false for most models, SmolLM2 included), so every sample of a prompt would be
    the same greedy reply. Its request field `generation_config` (a JSON string) replaces the
    model's generation config: the folder's own, with `do_sample` on (and transformers serve's
    1024-token default, which it applies only without that field)."""
    path = folder / "generation_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    config = {k: v for k, v in config.items() if not k.startswith("_") and k != "transformers_version"}
    return {"generation_config": json.dumps({"max_new_tokens": 1024, **config, "do_sample": True})}


def _short(e: Exception | None) -> str:
    text = str(getattr(e, "message", None) or e)
    return " ".join(text.split())[:200]
