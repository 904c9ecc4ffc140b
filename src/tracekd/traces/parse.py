"""The one trace parser: label, evidence list and answer list from any model output.

It reads both templates (and mixtures), tolerates junk - a leading `assistant`, missing closing
tags, Python-list or line lists, text after a list (`['X'].`, `['X'] (note)`), the label and
evidence sentences run together on one line, a paraphrased label sentence ("The time interval
is: equal.") - and never raises: a step it cannot find is None. Blank list items are dropped, so
`<answer>['']</answer>` gives no answer.
"""

from __future__ import annotations

import ast
import re
import warnings
from functools import lru_cache

from tracekd.traces.render import EVIDENCE_SENTENCE, Trace

_EVIDENCE_RE = re.compile(
    re.escape(EVIDENCE_SENTENCE.strip()) + r"[ \t]*(.*?)(?=</think>|<answer>|<think>|^[ \t]*answer[ \t]*:|\Z)",
    re.I | re.S | re.M,
)
_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|(?=<answer>)|\Z)", re.S)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.S)
_TAG_LINE_RE = re.compile(r"^[ \t]*(label|evidence|answer)[ \t]*:[ \t]?(.*?)[ \t]*$", re.I | re.M)
_CLOSING_TAGS_RE = re.compile(r"(?:[ \t]*</(?:think|answer)>)+$", re.I)
_ASSISTANT_RE = re.compile(r"^\s*assistant(?:[ \t]*:[ \t]*|[ \t]*\n|\s*$)", re.I)
_BULLET_RE = re.compile(r"^(?:[-*\u2022]|\d+[.)])\s+")


@lru_cache(maxsize=16)
def label_regex(sentence: str) -> re.Pattern:
    """Matches the dataset's label sentence ("The category of ... is: X.") and captures X.

    The sentence's first three words must match; the rest of its wording may drift (models write
    "between the event in the question and ..."), as long as "is:" follows on the same line.
    """
    head = " ".join(sentence.split("{label}")[0].split()[:3])
    return re.compile(re.escape(head) + r"[^\n:<]*?\bis[ \t]*:[ \t]*([^\n<]*)", re.I)


#: a paraphrased label sentence: the first sentence of the trace, "The <anything> is: X"
_PARAPHRASE_RE = re.compile(r"\A\s*The\b[^\n:<.]*?\bis[ \t]*:[ \t]*([^\n<]*)", re.IGNORECASE)
#: where a label value ends: a full stop before a space or the end, or the evidence sentence
_LABEL_END_RE = re.compile(r"\.(?=\s|$)|" + re.escape(" ".join(EVIDENCE_SENTENCE.split()[:2])) + r"\b", re.IGNORECASE)


def _label_value(raw: str) -> str | None:
    """The label as written: up to the sentence's full stop, without quotes."""
    m = _LABEL_END_RE.search(raw)
    value = raw[: m.start()] if m else raw
    return value.strip().rstrip(".").strip().strip("'\"").strip() or None


def parse_list(text: str) -> tuple[str, ...]:
    """A list written as a Python list (text after its closing bracket ignored), as lines, or as
    a single item."""
    s = text.strip()
    if not s:
        return ()
    if s.startswith("["):
        return _bracket_list(s)
    lines = [_BULLET_RE.sub("", ln.strip()) for ln in s.splitlines()]
    return tuple(ln for ln in lines if ln)


def _bracket_list(s: str) -> tuple[str, ...]:
    """The longest prefix ending at a `]` that is a list literal (`['X'].`, `['X'] (note)`);
    failing that, the text up to the last `]` read as a broken list."""
    cut = len(s)
    while cut > 0:
        value = _safe_literal(s[:cut])
        if isinstance(value, (list, tuple)):
            return _said(v if isinstance(v, str) else repr(v) for v in value)
        cut = s.rfind("]", 0, cut - 1) + 1  # the previous "]" (0 when there is none)
    last = s.rfind("]")
    return _broken_list(s[: last + 1] if last > 0 else s)


_SEPARATOR_RE = re.compile(r"""['"]\s*,\s*['"]""")


def _broken_list(s: str) -> tuple[str, ...]:
    """A list that is not a valid literal: an unescaped quote (['People's Party']) or truncated
    (['Paris', 'Lyo). Split on the quote-comma-quote separators; drop an unterminated last item."""
    body = s[1:].strip()
    closed = body.endswith("]")
    if closed:
        body = body[:-1].rstrip()
    items = _SEPARATOR_RE.split(body)
    out = []
    for k, item in enumerate(items):
        if k == 0 and item[:1] in ("'", '"'):
            item = item[1:]
        if k == len(items) - 1:
            if item[-1:] in ("'", '"'):
                item = item[:-1]
            elif not closed:
                continue  # truncated mid-item
        item = _unescape(item).strip()
        if item:
            out.append(item)
    return tuple(out)


def _safe_literal(s: str):
    """ast.literal_eval that returns None instead of raising or warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.literal_eval(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None


def _literal_list(s: str) -> tuple[str, ...] | None:
    """A value written as a Python list literal (`answer: ['a', 'b']`), else None."""
    s = s.strip()
    if not (s.startswith("[") and s.endswith("]")):
        return None
    value = _safe_literal(s)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return _said(value)
    return None


def _said(items) -> tuple[str, ...]:
    """The items that say something: a blank one (`['']`, `['  ']`) is no answer and cites no fact."""
    return tuple(x for x in items if x.strip())


def _unescape(s: str) -> str:
    return s.replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")


def parse(text: str, label_sentence: str) -> Trace:
    """Recover (label, evidence, answers) from a model output; missing steps are None.
    `label_sentence` is the dataset's (`Dataset.label_sentence`, with `{label}` in it): the
    sentence the output's label step is read from (another dataset's sentence is not a label)."""
    if not isinstance(text, str):
        return Trace(None, None, None)
    t = _ASSISTANT_RE.sub("", text, count=1)
    tags: dict[str, list[str]] = {k: [] for k in ("label", "evidence", "answer")}
    m: re.Match[str] | None
    for m in _TAG_LINE_RE.finditer(t):
        value = m.group(2)
        # "answer: x</think>": a closing tag glued to a value is junk (unless it is all there is)
        tags[m.group(1).lower()].append(_CLOSING_TAGS_RE.sub("", value) or value)

    think_m = _THINK_RE.search(t)
    scope = think_m.group(1) if think_m else t

    label = None
    label_re = label_regex(label_sentence)
    m = label_re.search(scope) or label_re.search(t)
    if m:
        label = _label_value(m.group(1))
    elif tags["label"]:
        label = tags["label"][0].strip() or None
    elif think_m and (m := _PARAPHRASE_RE.search(scope)):
        label = _label_value(m.group(1))

    evidence = None
    m = _EVIDENCE_RE.search(t)
    if m:
        evidence = parse_list(m.group(1))
    elif tags["evidence"]:
        vals = tags["evidence"]
        evidence = _literal_list(vals[0]) if len(vals) == 1 else None
        if evidence is None:
            evidence = _said(vals)

    answers = None
    m = _ANSWER_RE.search(t)
    if m:
        answers = parse_list(m.group(1)) or None
    elif tags["answer"]:
        vals = tags["answer"]
        answers = _literal_list(vals[0]) if len(vals) == 1 else None
        if answers is None:
            answers = _said(vals)
        answers = answers or None
    else:
        bare = None
        if think_m:
            close = t.find("</think>")
            bare = t[close + len("</think>") :] if close >= 0 else _unclosed_answer(think_m.group(1))
        elif label is None and evidence is None and not tags["label"] and not tags["evidence"]:
            bare = t
        if bare is not None:
            answers = parse_list(bare) or None
    return Trace(label, evidence, answers)


_EVIDENCE_HEAD_RE = re.compile(re.escape(EVIDENCE_SENTENCE.strip()), re.I)


def _unclosed_answer(body: str) -> str | None:
    """The answer written inside a `<think>` block that is never closed: its last line that starts
    with `[`, after the evidence list (the first list after the evidence sentence) when there is one."""
    lines = body.splitlines()
    start = 0
    for i, line in enumerate(lines):
        m = _EVIDENCE_HEAD_RE.search(line)
        if m:
            rest = line[m.end() :].strip()
            start = i + 1
            if not rest:  # the evidence list is on the next non-blank line
                start += next((k for k, ln in enumerate(lines[start:]) if ln.strip()), len(lines) - start) + 1
            break
    lists = [ln for ln in lines[start:] if ln.strip().startswith("[")]
    return lists[-1] if lists else None


def think_flags(text: str) -> tuple[str, ...]:
    """`unclosed_think`: a `<think>` block with neither `</think>` nor `<answer>` after it;
    `empty_think`: a `<think>` block with nothing in it (before its close, or before the answer)."""
    if not isinstance(text, str) or "<think>" not in text:
        return ()
    m = _THINK_RE.search(text)
    assert m is not None  # "<think>" is in the text
    out = []
    if "</think>" not in text[m.start() :] and "<answer>" not in text[m.start() :]:
        out.append("unclosed_think")
    if not m.group(1).strip() or _unclosed_answer(m.group(1)) == m.group(1).strip():
        out.append("empty_think")
    return tuple(out)
