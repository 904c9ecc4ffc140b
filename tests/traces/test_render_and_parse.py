"""Renderer and parser: exact round trip, junk tolerance, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekd.data import get_dataset
from tracekd.data.schema import clean_text
from tracekd.prepare import assign_splits
from tracekd.score.normalize import normalize_label
from tracekd.traces.conditions import CONDITIONS, make_targets
from tracekd.traces.parse import _literal_list, parse
from tracekd.traces.render import TEMPLATES, Trace, render

CATEGORY = "The category of the question asked is: {label}."
TEMPORAL = "The temporal relation between the event in question and the event in context is: {label}."


def _roundtrip_all(ds, examples):
    labels = ds.label_space(examples)
    n = 0
    for condition in CONDITIONS:
        for split in ("train", "test"):
            part = [ex for ex in examples if ex.split == split]
            for trace, _ in make_targets(part, condition, 0, labels):
                for template in TEMPLATES:
                    got = parse(render(trace, template, ds.label_sentence), ds.label_sentence)
                    assert got == trace, (template, condition, trace)
                    n += 1
    return n


@pytest.mark.parametrize(
    "name,source",
    [
        ("cotempqa", "cotempqa"),
        ("babi", "babi/en"),
        ("msmarco", "msmarco/ms_marco_v1.1_train_sample200.json"),
    ],
)
def test_roundtrip_every_real_example(shared_data, name, source):
    ds = get_dataset(name)
    examples = assign_splits(ds.load(str(shared_data / source)), 42, 0.2)
    assert _roundtrip_all(ds, examples) == len(examples) * len(CONDITIONS) * len(TEMPLATES)


@pytest.mark.parametrize("name", ["synthetic-temporal", "synthetic-babi"])
def test_roundtrip_every_synthetic_example(name):
    ds = get_dataset(name, size=300)
    examples = assign_splits(ds.load(None), 42, 0.2)
    assert _roundtrip_all(ds, examples) == 300 * len(CONDITIONS) * len(TEMPLATES)


def test_paper_template_text_is_the_papers():
    t = Trace("equal", ("A is x in 1990.",), ("x",))
    assert render(t, "paper", TEMPORAL) == (
        "<think>The temporal relation between the event in question and the event in context is: equal.\n"
        "I need to use the following facts to answer the question: ['A is x in 1990.']</think> <answer>['x']</answer>"
    )
    assert render(Trace(None, None, ("x", "y")), "paper", TEMPORAL) == "['x', 'y']"
    assert render(t, "tagged", TEMPORAL) == "label: equal\nevidence: A is x in 1990.\nanswer: x"


@pytest.mark.parametrize(
    "text,label,evidence,answers",
    [
        # the paper's model outputs begin with a stray "assistant"
        (
            "assistant\n\n<think>The temporal relation between the event in question and the event in context is: during.\n"
            "I need to use the following facts to answer the question: ['A b c.', 'D e f.']</think> <answer>['x', 'y']</answer>",
            "during",
            ("A b c.", "D e f."),
            ("x", "y"),
        ),
        # evidence as a bare sentence (the paper's perturbed models write this)
        (
            "<think>The category of the question asked is: counting.\nI need to use the following facts to answer the "
            "question: Mary got the milk.</think> <answer>['one']</answer>",
            "counting",
            ("Mary got the milk.",),
            ("one",),
        ),
        # missing closing tags
        (
            "<think>The category of the question asked is: counting.\nI need to use the following facts to answer the "
            "question: ['Mary got the milk.'] <answer>['one']",
            "counting",
            ("Mary got the milk.",),
            ("one",),
        ),
        # truncated Python list
        (
            "<think>The category of the question asked is: entity.</think> <answer>['Paris', 'Lyo",
            "entity",
            None,
            ("Paris",),
        ),
        # line lists
        ("label: yes-no\nevidence:\n- Mary went home.\nanswer: yes", "yes-no", (), ("yes",)),
        (
            "<think>I need to use the following facts to answer the question:\n- A.\n- B.\n</think>\n<answer>no</answer>",
            None,
            ("A.", "B."),
            ("no",),
        ),
        # answer only, bare list or bare text, with trailing junk lines ignored only inside tags
        ("assistant\n\n['heir apparent', 'Prince of Wales']", None, None, ("heir apparent", "Prince of Wales")),
        ("assistant professor", None, None, ("assistant professor",)),
        ("The answer is Paris.", None, None, ("The answer is Paris.",)),
        # a think block with no answer anywhere
        ("<think>The category of the question asked is: person.", "person", None, None),
        ("", None, None, None),
        # tagged template with extra chatter
        (
            "Sure! Here is my reasoning.\nlabel: numeric\nevidence: It costs $20.\nanswer: $20\nHope this helps.",
            "numeric",
            ("It costs $20.",),
            ("$20",),
        ),
    ],
)
def test_parser_tolerates_junk(text, label, evidence, answers):
    sentence = TEMPORAL if "temporal relation" in text else CATEGORY  # the dataset whose output it is
    assert parse(text, sentence) == Trace(label, evidence, answers)


@settings(deadline=None)
@given(st.text())
def test_parser_never_raises_on_arbitrary_text(text):
    t = parse(text, CATEGORY)
    assert t.label is None or isinstance(t.label, str)
    assert t.evidence is None or all(isinstance(e, str) for e in t.evidence)
    assert t.answers is None or all(isinstance(a, str) for a in t.answers)


_pieces = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "[",
        "]",
        "'",
        '"',
        "\n",
        "assistant",
        "label:",
        "evidence:",
        "answer:",
        "I need to use the following facts to answer the question:",
        "The category of the question asked is:",
        "\\",
        ", ",
        "[[[[",
        "x",
        "['']",
        "[' ']",
    ]
)


@settings(deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=30))
def test_parser_never_raises_on_trace_like_junk(parts):
    text = "".join(parts)
    t = parse(text, CATEGORY)
    # a step found is never empty: no blank label, no empty answer list, no blank answer
    assert t.label is None or t.label.strip()
    assert t.answers is None or (len(t.answers) > 0 and all(a.strip() for a in t.answers))
    # the stray "assistant" the paper's models write first changes nothing
    if not text.lstrip().lower().startswith("assistant"):
        assert parse("assistant\n\n" + text, CATEGORY) == t


_item = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).map(clean_text).filter(bool)
_label = st.from_regex(r"[a-z][a-z-]{0,20}", fullmatch=True)


@settings(deadline=None)
@given(
    label=st.one_of(st.none(), _label),
    evidence=st.one_of(st.none(), st.lists(_item, max_size=4).map(tuple)),
    answers=st.lists(_item, min_size=1, max_size=3).map(tuple),
    template=st.sampled_from(TEMPLATES),
    sentence=st.sampled_from([CATEGORY, TEMPORAL]),
)
def test_roundtrip_arbitrary_content(label, evidence, answers, template, sentence):
    # the tagged template is line-based: items may not themselves look like tag lines
    if template == "tagged" and any(
        x.lower().startswith(("label:", "evidence:", "answer:")) or _literal_list(x) is not None
        for x in (*(evidence or ()), *answers)
    ):
        return
    if label is None and evidence is None and template == "paper":
        trace = Trace(None, None, answers)
    else:
        trace = Trace(label, evidence, answers)
    if template == "paper" and any(_looks_like_markup(x) for x in (*(evidence or ()), *answers)):
        return
    assert parse(render(trace, template, sentence), sentence) == trace


def _looks_like_markup(s: str) -> bool:
    return any(tag in s for tag in ("<think>", "</think>", "<answer>", "</answer>"))


_EV = "I need to use the following facts to answer the question: "


@pytest.mark.parametrize(
    "text,label,evidence,answers",
    [
        # a full stop after the evidence list used to drop its last item
        (
            f"<think>{TEMPORAL.format(label='during')}\n{_EV}['A is x.', 'B is y.'].</think> <answer>['x']</answer>",
            "during",
            ("A is x.", "B is y."),
            ("x",),
        ),
        # a note after the answer list used to lose the answer
        (
            f"<think>{TEMPORAL.format(label='during')}\n{_EV}['A is x.']</think> <answer>['x'] (from the first fact)</answer>",
            "during",
            ("A is x.",),
            ("x",),
        ),
        ('<answer>["People\'s Party"] I think</answer>', None, None, ("People's Party",)),
        # label and evidence sentences on one line used to give the label "equal. I need to use ..."
        (
            f"<think>{TEMPORAL.format(label='equal')} {_EV}['A is x.']</think> <answer>['x']</answer>",
            "equal",
            ("A is x.",),
            ("x",),
        ),
        (
            f"<think>The temporal relation between the events is: equal {_EV}['A is x.']</think>",
            "equal",
            ("A is x.",),
            None,
        ),
        # a paraphrased label sentence used to give no label
        (
            f"<think>The time interval is: equal.\n{_EV}['A is x.']</think> <answer>['x']</answer>",
            "equal",
            ("A is x.",),
            ("x",),
        ),
        (
            f"<think>The time period is: 1934 to 1972.\n{_EV}A is x.</think> <answer>['x']</answer>",
            "1934 to 1972",
            ("A is x.",),
            ("x",),
        ),
        # ... but only as the trace's first sentence, with "is:", inside <think>
        (f"<think>The time interval for A is from 1935 to 1946. {_EV}['A is x.']</think>", None, ("A is x.",), None),
        ("The answer is: Paris.", None, None, ("The answer is: Paris.",)),
        # an empty string used to count as an answer (and as a cited fact)
        ("<answer>['']</answer>", None, None, None),
        ("<answer>['', 'x']</answer>", None, None, ("x",)),
        ("<think>a</think> ['  ']", None, None, None),
        ("label: equal\nevidence: ['']\nanswer: ['']", "equal", (), None),
        (
            f"<think>{TEMPORAL.format(label='equal')}\n{_EV}['', 'A is x.']</think> <answer>['x']</answer>",
            "equal",
            ("A is x.",),
            ("x",),
        ),
    ],
)
def test_parser_defects_found_in_review(text, label, evidence, answers):
    assert parse(text, TEMPORAL) == Trace(label, evidence, answers)


_LABEL_SPACES = [tuple(get_dataset(n).labels) for n in ("cotempqa", "babi", "msmarco")]
_noise = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(deadline=None, max_examples=300)
@given(
    labels=st.sampled_from(_LABEL_SPACES),
    data=st.data(),
    evidence=st.lists(_item, max_size=3).map(tuple),
    prefix=_noise,
    join=st.sampled_from(["\n", " ", ""]),
    end=st.sampled_from([".", "", " .", ". Then more."]),
    form=st.sampled_from(["paper", "paraphrase", "tagged"]),
)
def test_a_wrong_label_never_parses_as_the_gold_one(labels, data, evidence, prefix, join, end, form):
    """Whatever surrounds it - junk before the trace, the evidence sentence on the same line, a
    paraphrased sentence, trailing text - a trace stating a wrong label never reads as the gold."""
    gold = data.draw(st.sampled_from(labels))
    wrong = data.draw(st.sampled_from([x for x in labels if x != gold]))
    sentence = CATEGORY if labels != _LABEL_SPACES[0] else TEMPORAL
    if form == "tagged":
        text = f"{prefix}\nlabel: {wrong}\nevidence: {' '.join(evidence)}\nanswer: x"
    else:
        head = sentence.format(label=wrong)[:-1] if form == "paper" else f"The relation is: {wrong}"
        text = f"{prefix}<think>{head}{end}{join}{_EV}{list(evidence)!r}</think> <answer>['x']</answer>"
    got = parse(text, sentence).label
    assert got is None or normalize_label(got) != normalize_label(gold)


def test_an_empty_answer_is_scored_as_no_answer():
    """`<answer>['']</answer>` used to parse as the answer '' and be scored as an answered output."""
    from tracekd.data.schema import ContextItem, Example
    from tracekd.score.evaluate import score_output

    ds = get_dataset("cotempqa")
    ex = ds.decompose(
        Example(
            "cotempqa/equal/0",
            "cotempqa",
            "equal",
            "While A was holding the position of p, which?",
            (ContextItem("f0", "A holds the position of p in 1990."),),
            ("x",),
        )
    )
    row = score_output(ds, ex, "<answer>['']</answer>")
    assert (row["status"], row["parsed"]["answers"]) == ("unparsable", None)
    assert score_output(ds, ex, "<answer>['', 'x']</answer>")["parsed"]["answers"] == ["x"]


def test_the_label_is_read_from_the_outputs_own_dataset_sentence_only():
    """The parser used to build its label pattern from every registered dataset's sentence, so
    registering a dataset changed how every other dataset's outputs parsed. It reads the label
    sentence it is given (the output's own dataset's), whatever else is registered."""
    other = "The kind of puzzle posed here is: {label}."
    text = f"<think>Let me look.\n{other.format(label='counting')}</think> <answer>['x']</answer>"
    assert parse(text, CATEGORY).label is None
    assert parse(text, other).label == "counting"
    assert parse(text, TEMPORAL) == parse(text, CATEGORY) == Trace(None, None, ("x",))


@pytest.mark.parametrize("sentence", [TEMPORAL, CATEGORY])
@pytest.mark.parametrize(
    "body,evidence,answers,flags",
    [
        # Qwen3's answer-only outputs: an empty, unclosed think block, then the answer list
        ("assistant\n<think>\n\n['Lord Privy Seal', 'x']", None, ("Lord Privy Seal", "x"), {"unclosed", "empty"}),
        # a trace, then the answer list, no closing tag
        ("<think>{head}\n{ev}['A is x.']\n['x']", ("A is x.",), ("x",), {"unclosed"}),
        ("<think>{head}\n{ev}\n['A is x.']\n\n['x']", ("A is x.",), ("x",), {"unclosed"}),
        # the evidence list alone is no answer
        ("<think>{head}\n{ev}['A is x.']", ("A is x.",), None, {"unclosed"}),
        ("<think>{head}\n{ev}\n['A is x.']", ("A is x.",), None, {"unclosed"}),
        # an empty, closed think block
        ("<think></think> ['x']", None, ("x",), {"empty"}),
        ("<think>{head}\n{ev}['A is x.']</think> <answer>['x']</answer>", ("A is x.",), ("x",), set()),
    ],
)
def test_an_unclosed_or_empty_think_block_is_read_as_a_person_would(sentence, body, evidence, answers, flags):
    """The answer after an unclosed `<think>` was never read, so the output was scored unparsable
    and its answer wrong (567 of 950 Qwen3-1.7B answer-only outputs). The answer is the block's
    last list after the evidence list, and the output is flagged."""
    from tracekd.traces.parse import think_flags

    text = body.format(head=sentence.format(label="equal"), ev=_EV)
    got = parse(text, sentence)
    assert (got.evidence, got.answers) == (evidence, answers)
    assert set(think_flags(text)) == {f"{f}_think" for f in flags}


def test_an_unclosed_think_answer_is_scored_and_counted():
    from tracekd.data.schema import ContextItem, Example
    from tracekd.score.evaluate import score_output, summarize

    ds = get_dataset("cotempqa")
    ex = ds.decompose(
        Example(
            "cotempqa/equal/0",
            "cotempqa",
            "equal",
            "While A was holding the position of p, which?",
            (ContextItem("f0", "A holds the position of p in 1990."), ContextItem("f1", "A holds q in 1990.")),
            ("q",),
        )
    )
    row = score_output(ds, ex, "assistant\n<think>\n\n['q']")
    assert (row["status"], row["answer"]["correct"], row["parse_flags"]) == (
        "ok",
        True,
        ["unclosed_think", "empty_think"],
    )
    s = summarize([row, score_output(ds, ex, "<think></think> <answer>['q']</answer>")], ds)
    assert s["parsed"]["flags"] == {"empty_think": 2, "unclosed_think": 1} and s["rates"]["parse_rate"]["mean"] == 1.0
