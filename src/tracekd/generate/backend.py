"""The one interface of the decoding backends (`hf`, `vllm`): greedy decoding of the very prompt
ids training used (`models.prompts.prompt_ids`), stopping at the same EOS ids, one call for both.
A prompt may carry forced text (`tracekd intervene`): the start of the assistant turn, its token ids
appended after the chat template's assistant header; the model continues from there."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from tracekd.models.loading import load_tokenizer
from tracekd.models.presets import ModelSpec
from tracekd.models.prompts import prompt_ids

Prompt = tuple[str, list[dict[str, str]]]  # (example id, chat messages)


def forced_budget(max_new_tokens: int, forced_tokens: int) -> int:
    """New tokens a prompt with forced text may still write: the forced tokens count against the
    budget, as if the model had written them (at least one)."""
    return max(max_new_tokens - forced_tokens, 1)


class Generator(ABC):
    """A model ready to decode prompts."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.tok = load_tokenizer(spec)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return prompt_ids(self.tok, messages, self.spec)

    def forced_ids(self, forced: str) -> list[int]:
        """The forced text's ids, appended after the prompt's (tokenized alone, no special tokens added)."""
        return self.tok(forced, add_special_tokens=False)["input_ids"] if forced else []

    @abstractmethod
    def generate(
        self, prompts: list[Prompt], max_new_tokens: int, batch_size: int, forced: dict[str, str] | None = None
    ) -> Iterator[list[tuple[str, str]]]:
        """Yield [(id, output)] as outputs finish, a group at a time (`batch_size`: how many
        prompts decode together); every prompt exactly once. `forced`: id -> the text the assistant
        turn starts with (the output is what the model writes after it, within `forced_budget`)."""

    def close(self) -> None:
        """Free what the generator holds before the next stage (vLLM: shut its engine down). The
        `hf` backend's model goes with the generator object."""
        return None
