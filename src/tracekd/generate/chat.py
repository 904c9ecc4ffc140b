"""The one interface of the chat backends: chat messages in, replies out, for every stage that
asks a model in chat turns (`tracekd generate --backend openai`, `tracekd teach`).

Two backends: an OpenAI-compatible server (`openai_server.ServerBackend`: vLLM, `transformers
serve`, llama.cpp's server, hosted APIs; retries, bounded concurrency, the key read from an
environment variable) and a local model through tracekd's own token-level generator
(`LocalBackend`, greedy). Each reply is handed to a `keep` callback by the thread that received
it, so a caller that stores it there (a response cache, a predictions file) loses none however
it stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: a server (`openai`) or tracekd's own generator (`local`)."""

    backend: str
    model: str
    base_url: str | None
    api_key_env: str
    serve: bool  # tracekd starts `transformers serve` for `model` (a tracekd model) on 127.0.0.1
    timeout: float
    max_retries: int
    retry_delay: float
    concurrency: int
    role: str = "model"  # what the error messages call the server's model ("the teacher server at ...")

    @property
    def name(self) -> str:
        """The model's identity in a response cache."""
        return f"{'served' if self.serve else self.backend}:{self.model}"

    @property
    def where(self) -> str:
        if self.backend == "local":
            return f"local model {self.model!r}"
        if self.serve:
            return f"`transformers serve {self.model}`"
        return self.base_url or "the OpenAI API (OPENAI_BASE_URL or api.openai.com)"


@dataclass(frozen=True)
class Request:
    key: str  # what the caller knows the reply by (a cache key, an example id)
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

    @property
    def text(self) -> str:
        """The whole output as one text: reasoning given apart (R1-class servers) in <think> tags
        before the content, as a model that thinks inline writes it."""
        return self.content if self.reasoning is None else f"<think>{self.reasoning}</think>\n{self.content}"


Keep = Callable[[Request, Reply], None]  # stores a reply as soon as it arrives


class ChatBackend(Protocol):
    def complete(self, requests: list[Request], keep: Keep | None = None) -> Iterator[tuple[Request, Reply]]:
        """Replies as they arrive, each one also passed to `keep` first; every request once."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """Greedy decoding with tracekd's own generator (transformers, or vLLM on a GPU); a request's
    params give its `max_new_tokens`."""

    def __init__(self, endpoint: Endpoint, batch_size: int = 8):
        from tracekd.generate.options import GenerateOptions
        from tracekd.generate.run import make_generator
        from tracekd.models.presets import resolve

        self.endpoint = endpoint
        self.batch_size = batch_size
        self.gen = make_generator(resolve(endpoint.model), None, GenerateOptions())

    def close(self) -> None:
        self.gen.close()

    def complete(self, requests: list[Request], keep: Keep | None = None) -> Iterator[tuple[Request, Reply]]:
        by_key = {r.key: r for r in requests}
        groups: dict[int, list[Request]] = {}
        for r in requests:
            groups.setdefault(r.params["max_new_tokens"], []).append(r)
        for max_new, reqs in groups.items():
            for batch in self.gen.generate([(r.key, r.messages) for r in reqs], max_new, self.batch_size):
                for key, text in batch:
                    reply = Reply(text, None)
                    if keep is not None:
                        keep(by_key[key], reply)
                    yield by_key[key], reply


def make_backend(endpoint: Endpoint, workdir: Path) -> ChatBackend:
    """The backend of an endpoint (`workdir`: where a server tracekd starts writes its log)."""
    if endpoint.backend == "local":
        return LocalBackend(endpoint)
    from tracekd.generate.openai_server import ServerBackend

    return ServerBackend(endpoint, workdir)
