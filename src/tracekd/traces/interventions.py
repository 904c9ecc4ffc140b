"""The interventions on traces: which trace is forced into the assistant turn before the model
answers (`tracekd intervene`). A registry, like the datasets: an intervention is one entry of
`REGISTRY` (its name, what it tests, the kinds of trace it applies to, and a seeded function of the
example and the model's own output that returns the forced text), added by `register` (a name is
taken once); tracekd's own are the table `INTERVENTIONS`, in the report's order.

The forced text is the start of the assistant turn, up to and including where the answer begins:

- `paper` template (and every free-form trace): `<think>BODY</think>`; the model writes
  ` <answer>[...]</answer>` itself. No trace is `<think></think>`.
- `tagged` template: `BODY` then `\\nanswer:`; the model writes the answer. No trace is `answer:`.

These cut points are token boundaries of the byte-level BPE tokenizers (the text before them
tokenizes to a prefix of the whole output's tokens): `own` forces back exactly the model's own
tokens. A rule-based trace is rendered by the one renderer (`render.py`) and cut at the same point.

Every random choice is drawn from a generator seeded by (seed, kind of choice, example id), the
wrong steps by the rules of the `incorrect` condition (`conditions.wrong_label`,
`conditions.wrong_evidence`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tracekd.data.schema import Example
from tracekd.registry import Registry
from tracekd.traces.conditions import gold_trace, wrong_evidence, wrong_label
from tracekd.traces.render import Trace, render

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_LINE = "answer:"
_ANSWER_LINE_RE = re.compile(r"^[ \t]*answer[ \t]*:", re.I | re.M)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
FILLER = " ..."
TRUNCATE_FRACTIONS = (0.0, 0.25, 0.5, 0.75)

TraceKind = Literal["rule", "freeform"]


@dataclass(frozen=True)
class Context:
    """What an intervention is built from: the example, the model's own output (and its parsed
    trace), the prompt's form, the label space and the seed. `tokens` / `text` turn text into the
    model's tokens and back (truncation and filler count tokens); `donors`: the examples of the same
    dataset and subset (wrong evidence borrowed when the example's own context has none);
    `others`: other items' own outputs (a `mistake` takes a sentence from one of them)."""

    example: Example
    output: str
    parsed: Trace
    template: str
    label_sentence: str
    labels: tuple[str, ...]
    seed: int = 0
    freeform: bool = False
    tokens: Callable[[str], list[int]] = field(default=lambda s: list(s.encode()))
    text: Callable[[list[int]], str] = field(default=lambda ids: bytes(ids).decode(errors="ignore"))
    donors: tuple[Example, ...] = ()
    others: tuple[tuple[str, str], ...] = ()  # (example id, output)

    @property
    def form(self) -> str:
        """How the trace is wrapped: `paper` (a think block; every free-form trace) or `tagged`."""
        return "paper" if self.freeform else self.template


# -- the forced text -----------------------------------------------------------------------------------
def wrap(body: str, form: str) -> str:
    """The forced text of a trace body: the answer begins right after it."""
    if form == "paper":
        return f"{THINK_OPEN}{body}{THINK_CLOSE}"
    body = body.rstrip("\n")
    return f"{body}\n{ANSWER_LINE}" if body else ANSWER_LINE


def own_prefix(output: str, form: str) -> str:
    """The model's own output up to and including where its answer begins (`</think>`, or the
    `answer:` of its first answer line); the whole output when it wrote no answer step."""
    if form == "paper":
        i = output.find(THINK_CLOSE)
        return output if i < 0 else output[: i + len(THINK_CLOSE)]
    m = _ANSWER_LINE_RE.search(output)
    return output if m is None else output[: m.end()]


def own_body(output: str, form: str) -> str:
    """The trace of an output: its text before the answer (paper: inside the think block)."""
    prefix = own_prefix(output, form)
    if form == "paper":
        start = prefix.find(THINK_OPEN)
        body = prefix[start + len(THINK_OPEN) :] if start >= 0 else prefix
        return body.removesuffix(THINK_CLOSE)
    m = _ANSWER_LINE_RE.search(prefix)
    return (prefix if m is None else prefix[: m.start()]).rstrip("\n")


def rendered(label: str | None, evidence: tuple[str, ...] | None, ctx: Context) -> str:
    """A rule-based trace (label and evidence; None: the step left out), rendered by the one
    renderer and cut where the answer begins."""
    if label is None and evidence is None:
        return wrap("", ctx.template)
    return own_prefix(render(Trace(label, evidence, ("",)), ctx.template, ctx.label_sentence), ctx.template)


def _rng(ctx: Context, what: str) -> random.Random:
    return random.Random(f"{ctx.seed}:intervention-{what}:{ctx.example.id}")


# -- the builders ----------------------------------------------------------------------------------------
def _own(ctx: Context) -> str:
    return own_prefix(ctx.output, ctx.form)


def _gold(ctx: Context) -> str:
    g = gold_trace(ctx.example)
    return rendered(g.label, g.evidence, ctx)


def _gold_label(ctx: Context) -> str:
    return rendered(ctx.example.label, ctx.parsed.evidence, ctx)


def _gold_evidence(ctx: Context) -> str:
    return rendered(ctx.parsed.label, gold_trace(ctx.example).evidence, ctx)


def _wrong_label(ctx: Context) -> str:
    return wrong_label(ctx.example, ctx.labels, ctx.seed)


def _wrong_evidence(ctx: Context) -> tuple[str, ...]:
    return tuple(c.text for c in wrong_evidence(ctx.example, ctx.seed, ctx.donors).items)


def _truncate(fraction: float) -> Callable[[Context], str]:
    def build(ctx: Context) -> str:
        ids = ctx.tokens(own_body(ctx.output, ctx.form))
        return wrap(ctx.text(ids[: int(fraction * len(ids))]), ctx.form)

    return build


def _filler(ctx: Context) -> str:
    return wrap(FILLER * len(ctx.tokens(own_body(ctx.output, ctx.form))), ctx.form)


def _mistake(ctx: Context) -> str | None:
    """One sentence of the trace replaced by a sentence of another item's trace (both seeded)."""
    mine = _SENTENCE_RE.split(own_body(ctx.output, ctx.form).strip())
    pool = [
        s
        for pid, out in sorted(ctx.others)
        if pid != ctx.example.id
        for s in _SENTENCE_RE.split(own_body(out, "paper"))
    ]
    pool = [s for s in pool if s.strip() and s not in mine]
    if not pool or not mine[0]:
        return None
    rng = _rng(ctx, "mistake")
    mine[rng.randrange(len(mine))] = rng.choice(pool).strip()
    return wrap(" ".join(mine), ctx.form)


@dataclass(frozen=True)
class Intervention:
    """One intervention: `build(ctx)` -> the forced text (None: it does not apply to this item);
    `applies`: the kinds of trace it is defined for; `truncate`: the fraction of the trace kept
    (the early-answering curve)."""

    name: str
    doc: str
    build: Callable[[Context], str | None]
    applies: tuple[TraceKind, ...] = ("rule", "freeform")
    truncate: float | None = None


def _rule(name: str, doc: str, build: Callable[[Context], str]) -> Intervention:
    return Intervention(name, doc, build, applies=("rule",))


#: In the report's order.
INTERVENTIONS: list[Intervention] = [
    Intervention(
        "own",
        "the model's own trace, forced back and decoded again: must give its own answer (a consistency check)",
        _own,
    ),
    _rule("gold", "the rule-based correct trace (gold label and gold evidence)", _gold),
    _rule("gold_label", "the gold label, the model's own evidence", _gold_label),
    _rule("gold_evidence", "the model's own label, the gold evidence", _gold_evidence),
    _rule(
        "wrong_label",
        "the model's own evidence, a wrong label (another label of the label space, as in `incorrect`)",
        lambda c: rendered(_wrong_label(c), c.parsed.evidence, c),
    ),
    _rule(
        "wrong_evidence",
        "the model's own label, wrong evidence (as many non-gold facts of the context as the gold evidence has)",
        lambda c: rendered(c.parsed.label, _wrong_evidence(c), c),
    ),
    _rule(
        "wrong_both",
        "a wrong label and wrong evidence (the `incorrect` condition's trace)",
        lambda c: rendered(_wrong_label(c), _wrong_evidence(c), c),
    ),
    Intervention(
        "no_trace",
        "no trace: the answer right away (paper: an empty think block; tagged: the answer line)",
        lambda c: wrap("", c.form),
    ),
    *(
        Intervention(
            f"truncate@{f:g}",
            f"the first {100 * f:g} % of the model's own trace (in tokens), the answer forced right after",
            _truncate(f),
            truncate=f,
        )
        for f in TRUNCATE_FRACTIONS
    ),
    Intervention(
        "filler",
        f"the trace replaced by as many filler tokens ({FILLER.strip()!r})",
        _filler,
        applies=("freeform",),
    ),
    Intervention(
        "mistake",
        "one sentence of the trace replaced by a sentence of another item's trace",
        _mistake,
        applies=("freeform",),
    ),
]
REGISTRY: Registry[Intervention] = Registry("an intervention")


def register(intervention: Intervention) -> Intervention:
    """Add an intervention to the registry under its `name` (a name is taken once)."""
    return REGISTRY.add(intervention.name, intervention)


for _intervention in INTERVENTIONS:
    register(_intervention)


def groups() -> dict[str, list[str]]:
    """Names that stand for several interventions (`truncate`: every registered fraction)."""
    return {"truncate": [i.name for i in REGISTRY.values() if i.truncate is not None]}


REFERENCE = "own"  # what `changed` compares with
BASELINE = "no_trace"  # what each effect is compared with


def expand(names: list[str] | tuple[str, ...]) -> list[str]:
    """The interventions named (`truncate`: every fraction), in the registry's order; unknown names
    raise ValueError."""
    wanted: set[str] = set()
    named = groups()
    for n in names:
        if n in named:
            wanted.update(named[n])
        elif n in REGISTRY:
            wanted.add(n)
        else:
            raise ValueError(f"unknown intervention {n!r}; choose from {', '.join([*REGISTRY, *named])}")
    return [n for n in REGISTRY if n in wanted]


def forced_text(name: str, ctx: Context) -> str | None:
    """The forced text of one intervention for one item (None: not defined for this trace kind or item)."""
    iv = REGISTRY[name]
    if ("freeform" if ctx.freeform else "rule") not in iv.applies:
        return None
    return iv.build(ctx)
