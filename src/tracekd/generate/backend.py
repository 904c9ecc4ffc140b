"""The one interface of the decoding backends (`hf`, `vllm`): greedy decoding of the very prompt
ids training used (`models.prompts.prompt_ids`), stopping at the same EOS ids, one call for both."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from tracekd.models.loading import load_tokenizer
from tracekd.models.presets import ModelSpec
from tracekd.models.prompts import prompt_ids

Prompt = tuple[str, list[dict[str, str]]]  # (example id, chat messages)


class Generator(ABC):
    """A model ready to decode prompts."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.tok = load_tokenizer(spec)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return prompt_ids(self.tok, messages, self.spec)

    @abstractmethod
    def generate(self, prompts: list[Prompt], max_new_tokens: int, batch_size: int) -> Iterator[list[tuple[str, str]]]:
        """Yield [(id, output)] as outputs finish, a group at a time (`batch_size`: how many
        prompts decode together); every prompt exactly once."""

    def close(self) -> None:
        """Free what the generator holds before the next stage (vLLM: shut its engine down). The
        `hf` backend's model goes with the generator object."""
        return None
