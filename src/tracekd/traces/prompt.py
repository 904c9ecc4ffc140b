"""The one prompt format: a system message and a user message with the context and question.

Every condition, the untrained baseline included, sees exactly this prompt.
"""

from __future__ import annotations

from tracekd.data.schema import Example

SYSTEM = "You are a careful assistant. Answer the question using only the given context."
USER = "Answer the question based on the context:\n{context}\nQuestion: {question}"


def prompt_messages(ex: Example) -> list[dict[str, str]]:
    context = "\n".join(c.text for c in ex.context)
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER.format(context=context, question=ex.question)},
    ]
