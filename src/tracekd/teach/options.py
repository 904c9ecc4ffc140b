"""Teacher options (the `teacher:` block of a config, the options of `tracekd teach`) and the
paper's prompts.

The defaults are the paper's (public code of arXiv 2505.13792): the teacher sees one user turn
holding the students' prompt; a summary is asked at temperature 0 with at most 200 new tokens; the
post-hoc explanation is a second turn to the teacher after its answer. How the teacher's server is
reached (URL, key variable, concurrency, retries) is `generate.options.ServerOptions`, which
`tracekd generate --backend openai` shares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tracekd.generate.chat import Endpoint
from tracekd.generate.options import ServerOptions

SUMMARY_PROMPT = (
    "Summarize the following trace in a very concise and clear manner, highlighting key events and outcomes "
    "in less than 100 words:\n\n{trace}\n\nSummary:"
)
POSTHOC_PROMPT = (
    "You have answered the question correctly. Please provide a detailed explanation of the reasoning behind "
    "your answer. The explanation should be clear, concise, and easy to understand. \n Explanation: "
)


class TeacherOptions(ServerOptions):
    """The teacher, its sampling and prompts (how its server is reached: `ServerOptions`)."""

    # -- the teacher ---------------------------------------------------------------------------
    backend: Literal["openai", "local"] = Field(
        "openai", description="openai (a server) or local (tracekd's generator, greedy)."
    )
    model: str = Field(
        description="The teacher: the model name the server knows (`vllm serve X` -> X), or a tracekd "
        "model (--backend local, --serve)."
    )
    serve: bool = Field(
        False,
        description="Start `transformers serve` for MODEL (a tracekd preset or folder) on 127.0.0.1 while teaching.",
    )
    # -- sampling (None: the server's default) ----------------------------------------------
    temperature: float | None = Field(None, ge=0, description="Sampling temperature (default: the server's).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling (default: the server's).")
    max_tokens: int | None = Field(None, ge=1, description="Max new tokens per reply.")
    seed: int | None = Field(
        0, description="Seed of sample 0 (sample k uses seed + k; servers that honour it repeat themselves)."
    )
    # -- rejection sampling --------------------------------------------------------------------
    samples: int = Field(1, ge=1, description="Rejection sampling: ask up to K times until the answer scores correct.")
    accept: Literal["correct", "upstream"] = Field(
        "correct",
        description="Answer score that decides acceptance: correct, "
        "or upstream (CoTempQA's original scorer, the paper's).",
    )
    # -- the prompt ------------------------------------------------------------------------------
    system: bool = Field(False, description="Also send the students' system message (the paper sent one user turn).")
    instruction: str = Field(
        "", description="Text appended to the user turn (for teachers that do not reason unasked)."
    )
    # -- summaries and post-hoc explanations of accepted traces --------------------------------
    summary: bool = Field(False, description="Also ask for a summary of each kept trace (the paper's prompt).")
    summary_model: str | None = Field(None, description="Summarise with a second model (default: the teacher).")
    summary_base_url: str | None = Field(None, description="Server of the second model.")
    summary_api_key_env: str | None = Field(
        None, description="API key variable of the second model's server (default: the teacher's)."
    )
    summary_max_tokens: int | None = Field(200, ge=1, description="Max new tokens of a summary.")
    summary_prompt: str = Field(SUMMARY_PROMPT, description="The summary prompt ({trace}: the kept trace).")
    posthoc: bool = Field(
        False, description="Also ask for a post-hoc explanation of each kept answer (the paper's second turn)."
    )
    posthoc_prompt: str = Field(POSTHOC_PROMPT, description="The post-hoc prompt (a second user turn).")
    splits: list[Literal["train", "test"]] = Field(
        ["train", "test"],
        min_length=1,
        description="Splits to teach (repeatable).",
        json_schema_extra={"flag": "split"},
    )

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
                raise ValueError(
                    f"{'serve' if self.serve else 'the local backend'} needs a tracekd model (a preset or a folder): {e}"
                ) from None
        return self

    def endpoint(self) -> Endpoint:
        return self.chat_endpoint(self.backend, self.model, self.base_url, self.api_key_env, self.serve, "teacher")

    def summary_endpoint(self) -> Endpoint:
        second = self.summary_base_url is not None
        return self.chat_endpoint(
            "openai" if second else self.backend,
            self.summary_model or self.model,
            self.summary_base_url if second else self.base_url,
            self.summary_api_key_env or self.api_key_env,
            self.serve and not second,
            "teacher",
        )

    def sampling(self, sample: int) -> dict[str, Any]:
        """The request's sampling parameters (part of the cache key)."""
        if self.backend == "local":
            return {"max_new_tokens": self.max_tokens or 512, "greedy": True}
        params = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": None if self.seed is None else self.seed + sample,
        }
        return {k: v for k, v in params.items() if v is not None}

    def summary_sampling(self) -> dict[str, Any]:
        if self.summary_endpoint().backend == "local":
            return {"max_new_tokens": self.summary_max_tokens or 512, "greedy": True}
        return {"temperature": 0.0, **({"max_tokens": self.summary_max_tokens} if self.summary_max_tokens else {})}
