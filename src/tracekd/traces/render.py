"""The one trace renderer. Two templates carry the same content (label, evidence, answers):

`paper` - the paper's sentences:
    <think>The category of the question asked is: counting.
    I need to use the following facts to answer the question: ['Mary got the milk.']</think> <answer>['one']</answer>
  (answer-only targets are the bare answer list, as in the paper: ['one'])

`tagged` - a compact line-based form:
    label: counting
    evidence: Mary got the milk.
    answer: one

A free-form trace (a teacher's reasoning, `Trace.reasoning`) has one form in both templates, the
paper's for its R1 traces: <think>reasoning</think> <answer>['one']</answer>.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TEMPLATES = ("paper", "tagged")
EVIDENCE_SENTENCE = "I need to use the following facts to answer the question: "
_TAGS = re.compile(r"</?(?:think|answer)>", re.I)


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace's content. None means the step is absent (not rendered, or not found by the parser).
    `reasoning` is a free-form trace (a teacher's); it replaces the label and evidence steps."""

    label: str | None
    evidence: tuple[str, ...] | None
    answers: tuple[str, ...] | None
    reasoning: str | None = None


def render(trace: Trace, template: str, label_sentence: str) -> str:
    """Render a trace. `label_sentence` is the dataset's sentence, with `{label}` in it."""
    answers = list(trace.answers or ())
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    if trace.reasoning is not None:
        # tags inside the reasoning would end the block early: the parser reads the first <answer>
        return f"<think>{_TAGS.sub('', trace.reasoning).strip()}</think> <answer>{answers!r}</answer>"
    if template == "paper":
        if trace.label is None and trace.evidence is None:
            return repr(answers)
        think = ""
        if trace.label is not None:
            think += label_sentence.format(label=trace.label) + "\n"
        if trace.evidence is not None:
            think += EVIDENCE_SENTENCE + repr(list(trace.evidence))
        return f"<think>{think}</think> <answer>{answers!r}</answer>"
    lines = []  # tagged
    if trace.label is not None:
        lines.append(f"label: {trace.label}")
    if trace.evidence is not None:
        lines += [f"evidence: {e}" for e in trace.evidence] or ["evidence:"]
    lines += [f"answer: {a}" for a in answers]
    return "\n".join(lines)
