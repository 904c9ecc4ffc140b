"""Teacher traces as SFT conditions: the files `tracekd teach` writes, and the targets built from them.

(conditions follow in stage 3)
"""

from __future__ import annotations

import re

RESPONSES_FILE = "responses.jsonl"
TEACHER_FILE = "teacher.jsonl"
SUMMARY_FILE = "teach_summary.json"

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S)


def split_reasoning(content: str, reasoning: str | None) -> tuple[str | None, str]:
    """(reasoning, answer text) of a reply: the server's reasoning field when it gives one, else
    `<think>...</think>` in the content (also a closing tag alone, for templates that open the
    block in the prompt, and an unclosed block cut off by the token limit); else no reasoning."""
    if reasoning and reasoning.strip():
        return reasoning.strip(), content.strip()
    m = _THINK_RE.search(content)
    if m:
        return m.group(1).strip(), (content[: m.start()] + content[m.end():]).strip()
    if "</think>" in content:
        before, after = content.split("</think>", 1)
        return before.strip(), after.strip()
    if "<think>" in content:
        before, after = content.split("<think>", 1)
        return after.strip(), before.strip()
    return None, content.strip()
