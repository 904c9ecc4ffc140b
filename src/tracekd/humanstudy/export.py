"""Tidy long rows of a study's answers — `tracekd humanstudy export`: one row per participant ×
page × question, with what the page showed (item, type, wrong variant and its wrong step,
attention check) beside the answer and the seconds spent on the page."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from tracekd.humanstudy.app import step_of
from tracekd.humanstudy.db import Answers
from tracekd.humanstudy.spec import DB_FILE, Study
from tracekd.jsonio import write_text_atomic

COLUMNS = (
    "participant",
    "prolific_pid",
    "slot",
    "completed",
    "page",
    "kind",
    "item",
    "type",
    "wrong",
    "true_step",
    "wrong_kind",
    "attention",
    "question",
    "value",
    "seconds",
)


def rows(study: Study, store: Answers) -> list[dict[str, Any]]:
    people = {p["id"]: p for p in store.all_participants()}
    out = []
    for a in store.all_answers():
        p = people[a["participant"]]
        step = step_of(study.plans[p["slot"]], a["page"])
        page = step.page
        wrong = page is not None and page.wrong
        shown = study.trace(page.item, page.type) if page is not None and page.item is not None else None
        out.append(
            {
                "participant": p["id"],
                "prolific_pid": p["pid"],
                "slot": p["slot"],
                "completed": int(p["completed_at"] is not None),
                "page": step.number if step.kind == "item" else "",
                "kind": step.kind,
                "item": page.item if page is not None and page.item is not None else "",
                "type": page.type if page is not None and page.type is not None else "",
                "wrong": int(wrong) if page is not None else "",
                "true_step": shown.wrong.step if shown and wrong else "",
                "wrong_kind": shown.wrong.kind if shown and wrong else "",
                "attention": int(page.attention is not None) if page is not None else "",
                "question": a["question"],
                "value": a["value"],
                "seconds": "" if a["seconds"] is None else round(a["seconds"], 3),
            }
        )
    return out


def open_store(study_dir: Path, db_url: str | None) -> Answers:
    return Answers(db_url or f"sqlite:///{Path(study_dir) / DB_FILE}")


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    write_text_atomic(path, buf.getvalue())
