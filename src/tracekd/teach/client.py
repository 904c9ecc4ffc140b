"""Backends that answer chat requests: an OpenAI-compatible server (the `openai` client: vLLM,
`transformers serve`, llama.cpp's server, hosted APIs) or a local model through tracekd's own
generator.

The server backend keeps at most `concurrency` requests in flight, and retries with exponential
backoff (doubling from `retry_delay`, capped at 30 s, `Retry-After` honoured) on 408 / 409 / 429 /
5xx, timeouts, refused connections and malformed bodies; after `max_retries` retries, or on any
other refusal (401, 404, ...), it raises an InputError naming the server's URL.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.teach.options import Endpoint

MAX_DELAY = 30.0
RETRY_STATUS = (408, 409, 429)  # and every 5xx


@dataclass(frozen=True)
class Request:
    key: str  # the cache key
    messages: list[dict[str, str]] = field(hash=False)
    params: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Reply:
    content: str
    reasoning: str | None  # the server's reasoning_content (or `reasoning`), when it gives one
    finish_reason: str | None = None
    completion_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Malformed(Exception):
    """The server answered 200 with a body that is not a chat completion."""


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
        content or "", reasoning, getattr(choices[0], "finish_reason", None), getattr(usage, "completion_tokens", None)
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
            from tracekd.models.loading import model_path
            from tracekd.models.presets import resolve
            from tracekd.teach.serve import LocalServer

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
                resp = self.client.chat.completions.create(
                    model=self.model, messages=req.messages, extra_body=extra, **req.params
                )
                return _reply(resp)
            except openai.APIStatusError as e:
                if e.status_code not in RETRY_STATUS and e.status_code < 500:
                    hint = f"; is the key in ${self.endpoint.api_key_env}?" if e.status_code in (401, 403) else ""
                    raise InputError(
                        f"the teacher server at {self.url} refused the request "
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
            raise InputError(f"the teacher server at {self.url} {what} ({tries} tries); is it running?")
        if isinstance(last, openai.APIStatusError):
            raise InputError(
                f"the teacher server at {self.url} kept failing (HTTP {last.status_code}: {_short(last)}; {tries} tries)"
            )
        raise InputError(
            f"the teacher server at {self.url} kept sending malformed responses ({_short(last)}; {tries} tries)"
        )

    def complete(self, requests: list[Request]) -> Iterator[tuple[Request, Reply]]:
        """Replies as they arrive, at most `concurrency` requests in flight; the first failure
        cancels what has not started and is raised once the requests in flight are done."""
        if not requests:
            return
        pool = ThreadPoolExecutor(max_workers=self.endpoint.concurrency, thread_name_prefix="tracekd-teach")
        todo = iter(requests)
        running: dict = {}
        try:
            for req in todo:
                running[pool.submit(self.ask, req)] = req
                if len(running) >= self.endpoint.concurrency:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    req = running.pop(fut)
                    yield req, fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        running[pool.submit(self.ask, nxt)] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


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


class LocalBackend:
    """Greedy decoding with tracekd's own generator (transformers, or vLLM on a GPU)."""

    def __init__(self, endpoint: Endpoint, batch_size: int = 8):
        from tracekd.generate.options import GenerateOptions
        from tracekd.generate.run import make_generator
        from tracekd.models.presets import resolve

        self.endpoint = endpoint
        self.batch_size = batch_size
        self.gen = make_generator(resolve(endpoint.model), None, GenerateOptions())

    def close(self) -> None:
        pass

    def complete(self, requests: list[Request]) -> Iterator[tuple[Request, Reply]]:
        by_key = {r.key: r for r in requests}
        groups: dict[int, list[Request]] = {}
        for r in requests:
            groups.setdefault(r.params["max_new_tokens"], []).append(r)
        for max_new, reqs in groups.items():
            for batch in self.gen.generate([(r.key, r.messages) for r in reqs], max_new, self.batch_size):
                for key, text in batch:
                    yield by_key[key], Reply(text, None)


def make_backend(endpoint: Endpoint, workdir: Path):
    return LocalBackend(endpoint) if endpoint.backend == "local" else ServerBackend(endpoint, workdir)
