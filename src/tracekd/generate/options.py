"""Generation options (the `generate:` block of a config, the flags of `tracekd generate`), and the
options of a chat server that `tracekd generate --backend openai` and `tracekd teach` share."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracekd.generate.chat import Endpoint
from tracekd.models.loading import Precision


class ServerOptions(BaseModel):
    """How an OpenAI-compatible server is reached. The API key is never an option: only the name of
    the environment variable that holds it."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (default: the openai client's)."
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="The variable holding the API key (unset: no key).")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    timeout: float = Field(600.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(
        5, ge=0, description="Retries on 429 / 5xx / timeouts / connection errors / malformed replies."
    )
    retry_delay: float = Field(0.5, ge=0, description="First backoff in seconds (doubles each retry, capped at 30).")

    def chat_endpoint(
        self, backend: str, model: str, base_url: str | None, api_key_env: str, serve: bool, role: str
    ) -> Endpoint:
        """An endpoint reached with these transport options (timeout, retries, concurrency)."""
        return Endpoint(
            backend,
            model,
            base_url,
            api_key_env,
            serve,
            self.timeout,
            self.max_retries,
            self.retry_delay,
            self.concurrency,
            role,
        )


SERVER_FIELDS = frozenset(ServerOptions.model_fields)


class GenerateOptions(ServerOptions):
    max_new_tokens: int = Field(256, ge=1, description="Max new tokens per output.")
    batch_size: int = Field(16, ge=1, description="Prompts per batch.")
    backend: Literal["auto", "hf", "vllm", "openai"] = Field(
        "auto",
        description="auto: vLLM when installed and a GPU is present, else hf; openai: chat requests to an "
        "OpenAI-compatible server (--base-url; --model is the name the server knows).",
    )
    merge: bool = Field(False, description="Merge the LoRA adapter into the base before decoding.")
    precision: Precision = Field(
        "auto",
        description="fp32 or bf16 weights, or auto (bf16 where supported and faster: "
        "CUDA, CPUs with AMX / AVX512-BF16).",
    )
    request_seed: int | None = Field(
        0, description="--backend openai: the seed each request sends (besides temperature 0, for servers that sample)."
    )
    limit: int | None = Field(None, ge=1, description="Only the first N test examples.")

    @model_validator(mode="after")
    def _server_options_need_a_server(self) -> GenerateOptions:
        if self.backend != "openai":
            fields = {*SERVER_FIELDS, "request_seed"}
            given = sorted(f for f in fields if getattr(self, f) != GenerateOptions.model_fields[f].default)
            if given:
                raise ValueError(f"{', '.join(given)}: only for backend openai (a server)")
        return self

    def served(self) -> bool:
        return self.backend == "openai"

    def endpoint(self, model: str) -> Endpoint:
        """Where `--backend openai` sends the prompts of `model` (the name the server knows)."""
        return self.chat_endpoint("openai", model, self.base_url, self.api_key_env, False, "model")

    def request_params(self) -> dict[str, Any]:
        """The sampling parameters of every request: greedy where the server allows (temperature 0,
        a fixed seed), at most `max_new_tokens` new tokens."""
        params = {"temperature": 0.0, "max_tokens": self.max_new_tokens, "seed": self.request_seed}
        return {k: v for k, v in params.items() if v is not None}
