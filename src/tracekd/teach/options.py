"""Teacher options (the `teacher:` block of a config, the options of `tracekd teach`) and the
paper's prompts.

The defaults are the paper's (public code of arXiv 2505.13792): the teacher sees one user turn
holding the students' prompt; a summary is asked at temperature 0 with at most 200 new tokens; the
post-hoc explanation is a second turn to the teacher after its answer. The API key is never an
option: only the name of the environment variable that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SUMMARY_PROMPT = (
    "Summarize the following trace in a very concise and clear manner, highlighting key events and outcomes "
    "in less than 100 words:\n\n{trace}\n\nSummary:"
)
POSTHOC_PROMPT = (
    "You have answered the question correctly. Please provide a detailed explanation of the reasoning behind "
    "your answer. The explanation should be clear, concise, and easy to understand. \n Explanation: "
)


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

    @property
    def name(self) -> str:
        """The teacher's identity in the response cache."""
        return f"{'served' if self.serve else self.backend}:{self.model}"

    @property
    def where(self) -> str:
        if self.backend == "local":
            return f"local model {self.model!r}"
        if self.serve:
            return f"`transformers serve {self.model}`"
        return self.base_url or "the OpenAI API (OPENAI_BASE_URL or api.openai.com)"


class TeacherOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # -- the teacher ---------------------------------------------------------------------------
    backend: Literal["openai", "local"] = "openai"  # local: a tracekd preset / folder, greedy decoding
    model: str  # the model name the server knows (`vllm serve X` -> X), or a tracekd model (local)
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1 (None: the openai client's default)
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key; unset means no key (local servers)
    serve: bool = False  # start `transformers serve` for `model` (a tracekd preset or folder) on 127.0.0.1
    # -- sampling (None: the server's default) ----------------------------------------------
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = 0  # sample k is asked with seed + k (servers that honour it repeat themselves)
    # -- rejection sampling --------------------------------------------------------------------
    samples: int = Field(1, ge=1)  # K: ask up to K times until an answer scores correct
    accept: Literal["correct", "upstream"] = "correct"  # upstream: CoTempQA's lenient original scorer (the paper's)
    # -- the prompt ------------------------------------------------------------------------------
    system: bool = False  # also send the students' system message (the paper sent one user turn)
    instruction: str = ""  # appended to the user turn (for teachers that do not reason unasked)
    # -- summaries and post-hoc explanations of accepted traces --------------------------------
    summary: bool = False
    summary_model: str | None = None  # a second model (default: the teacher)
    summary_base_url: str | None = None
    summary_api_key_env: str | None = None
    summary_max_tokens: int | None = Field(200, ge=1)
    summary_prompt: str = SUMMARY_PROMPT
    posthoc: bool = False
    posthoc_prompt: str = POSTHOC_PROMPT
    # -- transport -------------------------------------------------------------------------------
    concurrency: int = Field(4, ge=1)  # requests in flight at once
    timeout: float = Field(600.0, gt=0)  # seconds per request
    max_retries: int = Field(5, ge=0)  # on 429 / 5xx / timeouts / unreachable / malformed bodies
    retry_delay: float = Field(0.5, ge=0)  # first backoff in seconds; doubles each retry (capped at 30)
    splits: list[Literal["train", "test"]] = Field(default_factory=lambda: ["train", "test"], min_length=1)

    @model_validator(mode="after")
    def _local_is_greedy(self) -> TeacherOptions:
        if self.backend == "local" and (self.samples > 1 or (self.temperature or 0) > 0 or self.top_p is not None):
            raise ValueError("the local backend decodes greedily: samples must be 1, with no temperature or top_p")
        if "{trace}" not in self.summary_prompt:
            raise ValueError("summary_prompt must contain {trace}")
        if self.serve and (self.backend != "openai" or self.base_url is not None):
            raise ValueError("serve starts a local server: it needs backend openai and no base_url")
        if self.serve or self.backend == "local":  # then `model` is a tracekd model: a preset or a folder
            from tracekd.errors import InputError
            from tracekd.models import resolve

            try:
                resolve(self.model)
            except InputError as e:
                raise ValueError(f"{'serve' if self.serve else 'the local backend'} needs a tracekd model (a preset or a folder): {e}") from None
        return self

    def endpoint(self) -> Endpoint:
        return Endpoint(self.backend, self.model, self.base_url, self.api_key_env, self.serve, self.timeout,
                        self.max_retries, self.retry_delay, self.concurrency)

    def summary_endpoint(self) -> Endpoint:
        second = self.summary_base_url is not None
        backend = "openai" if second else self.backend
        return Endpoint(backend, self.summary_model or self.model, self.summary_base_url if second else self.base_url,
                        self.summary_api_key_env or self.api_key_env, self.serve and not second, self.timeout,
                        self.max_retries, self.retry_delay, self.concurrency)

    def sampling(self, sample: int) -> dict[str, Any]:
        """The request's sampling parameters (part of the cache key)."""
        if self.backend == "local":
            return {"max_new_tokens": self.max_tokens or 512, "greedy": True}
        params = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                  "seed": None if self.seed is None else self.seed + sample}
        return {k: v for k, v in params.items() if v is not None}

    def summary_sampling(self) -> dict[str, Any]:
        if self.summary_endpoint().backend == "local":
            return {"max_new_tokens": self.summary_max_tokens or 512, "greedy": True}
        return {"temperature": 0.0, **({"max_tokens": self.summary_max_tokens} if self.summary_max_tokens else {})}
