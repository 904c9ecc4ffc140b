"""The study's web app — `tracekd humanstudy serve` (FastAPI, Jinja2 templates with autoescaping,
no external asset).

Pages of a participant: consent → instructions → one page per item (and the attention checks
among them) → demographics → completion. `GET /?PROLIFIC_PID=..&STUDY_ID=..&SESSION_ID=..` starts
(or resumes) a session: one per PID, held by a random token in an HttpOnly cookie; a PID that has a
session elsewhere cannot take it over. `GET /page` shows the participant's current page (a reload
or a return resumes there), `POST /page` saves it (see db.py: stale or second-tab submissions
save nothing). Every form value is checked: a missing, out-of-range or unknown field is refused
with a message naming it, and nothing is saved. `/admin` shows progress (with the admin token when
one is set — `serve` sets one when it listens beyond loopback — else from loopback only).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tracekd.humanstudy.db import Answers, Participant, StudyFull
from tracekd.humanstudy.spec import (
    AGREE,
    ATTENTION_TEXT,
    DB_FILE,
    DEMOGRAPHICS,
    DEMOGRAPHICS_LABELS,
    INTERPRETABILITY,
    LIKERT,
    LOAD,
    LOW_HIGH,
    VERIFY,
    VERIFY_CHOICES,
    WRONG_STEP,
    Page,
    Study,
    load_study,
)

COOKIE = "tracekd_hs"
_PID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}  # "testclient": Starlette's test client's host
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


@dataclass(frozen=True)
class Step:
    """Page `index` of a participant: kind consent, instructions, item, demographics or done."""

    index: int
    kind: str
    page: Page | None = None
    number: int = 0  # item pages: 1-based position among the item pages


def step_of(plan: list[Page], index: int) -> Step:
    if index == 0:
        return Step(0, "consent")
    if index == 1:
        return Step(1, "instructions")
    if index < 2 + len(plan):
        return Step(index, "item", plan[index - 2], index - 1)
    return Step(index, "demographics" if index == 2 + len(plan) else "done")


def shown_steps(study: Study, page: Page) -> list[str]:
    if page.attention is not None:
        return [ATTENTION_TEXT]
    shown = study.trace(page.item, page.type)
    return shown.wrong.steps if page.wrong else shown.trace.steps


class BadForm(Exception):
    pass


def check_form(study: Study, step: Step, form: dict[str, str]) -> dict[str, str]:
    """The answers of a page's form, or BadForm naming what is wrong."""
    fields = {k: v.strip() for k, v in form.items() if k != "page"}
    if step.kind == "consent":
        if fields != {"consent": "yes"}:
            raise BadForm("To take part, tick \u201cI agree\u201d (the only field of this page).")
        return {}
    if step.kind == "instructions":
        if fields:
            raise BadForm(f"unexpected field(s): {', '.join(sorted(fields))}")
        return {}
    if step.kind == "demographics":
        return _choices(fields, DEMOGRAPHICS)
    assert step.page is not None  # an item page
    steps = len(shown_steps(study, step.page))
    allowed: dict[str, tuple[str, ...]] = {q: tuple(map(str, LIKERT)) for q in (*INTERPRETABILITY, *LOAD)}
    allowed[VERIFY] = VERIFY_CHOICES
    if fields.get(VERIFY) == "no":
        allowed[WRONG_STEP] = tuple(str(i) for i in range(1, steps + 1))
    elif fields.get(WRONG_STEP, "") == "":
        fields.pop(WRONG_STEP, None)
    return _choices(fields, allowed)


def _choices(fields: dict[str, str], allowed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise BadForm(f"unexpected field(s): {', '.join(unknown)}")
    missing = [q for q in allowed if not fields.get(q)]
    if missing:
        raise BadForm(f"Please answer every question (missing: {', '.join(missing)}).")
    for q, v in fields.items():
        if v not in allowed[q]:
            raise BadForm(f"{q}: {v[:40]!r} is not one of the choices")
    return dict(fields)


def create_app(study_dir: str | Path, db_url: str | None = None, admin_token: str | None = None) -> FastAPI:
    study_dir = Path(study_dir)
    study = load_study(study_dir)
    store = Answers(db_url or f"sqlite:///{study_dir / DB_FILE}")
    store.create()  # no-op when the tables exist
    plans = study.plans
    app = FastAPI(title=f"tracekd study {study.spec.name}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    def render(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = _env.get_template(name).render(study=study.spec, **ctx)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def message(text: str, status: int) -> HTMLResponse:
        return render("message.html", status, message=text)

    def current(request: Request) -> Participant | None:
        token = request.cookies.get(COOKIE)
        return store.by_token(token) if token else None

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/")
    def start(request: Request):
        q = request.query_params
        pid = q.get("PROLIFIC_PID")
        me = current(request)
        if me is not None and (pid is None or pid == me.pid):
            return RedirectResponse("/page", status_code=303)
        if pid is None:
            if not study.spec.allow_anonymous:
                return message(
                    "Please open this study from its Prolific page (the link carries your Prolific ID).", 400
                )
            import secrets

            pid = "anon-" + secrets.token_hex(8)
        if not _PID.match(pid) or any(v and not _PID.match(v) for v in (q.get("STUDY_ID"), q.get("SESSION_ID"))):
            return message("The Prolific ID, study ID or session ID in the link is not valid.", 400)
        try:
            me, new = store.join(pid, len(plans), q.get("STUDY_ID"), q.get("SESSION_ID"))
        except StudyFull:
            return message("This study is full. Thank you for your interest; please return it on Prolific.", 409)
        if not new and request.cookies.get(COOKIE) != me.token:
            return message(
                "This Prolific ID has already started the study in another browser. Please continue there.", 403
            )
        response = RedirectResponse("/page", status_code=303)
        # Lax, not Strict: a participant who returns through Prolific's link (a navigation from
        # another site) must bring the cookie to resume; POSTs come from this site's own pages
        response.set_cookie(COOKIE, me.token, httponly=True, samesite="lax", max_age=7 * 24 * 3600)
        return response

    def show(me: Participant, error: str | None = None, status: int = 200) -> HTMLResponse:
        step = step_of(plans[me.slot], me.page)
        if step.kind == "done":
            code = study.spec.prolific.completion_code
            redirect = study.spec.prolific.redirect and not me.pid.startswith("anon-")
            return render("done.html", code=code, link=PROLIFIC_COMPLETE + code, redirect=redirect)
        store.shown(me)
        ctx: dict[str, Any] = {"page_index": me.page, "error": error}
        if step.kind == "item":
            ctx.update(_item_context(study, step, len(plans[me.slot])))
        if step.kind == "demographics":
            ctx.update(questions=[(q, DEMOGRAPHICS_LABELS[q], opts) for q, opts in DEMOGRAPHICS.items()])
        return render(f"{step.kind}.html", status, **ctx)

    @app.get("/page")
    def page(request: Request):
        me = current(request)
        if me is None:
            return message("No session: open the study from its link again (your answers are kept).", 401)
        return show(me)

    @app.post("/page")
    async def submit(request: Request):
        me = current(request)
        if me is None:
            return message("No session: open the study from its link again (your answers are kept).", 401)
        form = await request.form()
        if len(form) > 40 or any(not isinstance(v, str) or len(v) > 200 for v in form.values()):
            return show(me, "The form was not understood.", 400)
        values = {k: str(v) for k, v in form.items()}
        try:
            index = int(values.get("page", ""))
        except ValueError:
            return show(me, "The form was not understood (no page number).", 400)
        if index != me.page:
            return message(
                "This page was already answered (perhaps in another tab). Your answers are kept: "
                "continue where you are.",
                409,
            )
        step = step_of(plans[me.slot], index)
        if step.kind == "done":
            return RedirectResponse("/page", status_code=303)
        try:
            answers = check_form(study, step, values)
        except BadForm as e:
            return show(me, str(e), 422)
        if not store.save(me, index, answers, last=step.kind == "demographics"):
            return message("This page was already answered (perhaps in another tab). Continue where you are.", 409)
        return RedirectResponse("/page", status_code=303)

    @app.get("/admin")
    def admin(request: Request, token: str | None = None, fmt: str = "html"):
        # with a token (serve sets one when it listens beyond loopback) every request needs it, so a
        # proxy on this machine does not make the world loopback; without one, loopback only
        host = request.client.host if request.client else ""
        if admin_token is not None:
            allowed = token is not None and secrets.compare_digest(token.encode(), admin_token.encode())
        else:
            allowed = host in LOOPBACK
        if not allowed:
            return message("Not allowed (the admin view needs the admin token away from this machine).", 403)
        data = progress(study, store)
        if fmt == "json":
            return JSONResponse(data)
        return render("admin.html", data=data)

    return app


def _item_context(study: Study, step: Step, pages: int) -> dict[str, Any]:
    page = step.page
    assert page is not None  # an item page
    likert = [(q, text, AGREE) for q, text in INTERPRETABILITY.items()]
    likert += [(q, text, LOW_HIGH) for q, text in LOAD.items()]
    ctx: dict[str, Any] = {"number": step.number, "pages": pages, "likert": likert}
    ctx["steps"] = shown_steps(study, page)
    if page.attention is not None:
        ctx.update(question="Attention check", context=[], answer=None)
    else:
        shown = study.trace(page.item, page.type)
        item = study.items[shown.item]
        ctx.update(
            question=item.question,
            context=item.context,
            answer=shown.trace.answer if study.spec.show_answer else None,
        )
    return ctx


def progress(study: Study, store: Answers) -> dict[str, Any]:
    """Slots claimed and completed, pages saved per type (the admin view)."""
    people = store.all_participants()
    saved = store.all_answers()
    by_id = {p["id"]: p for p in people}
    per_type: dict[str, int] = dict.fromkeys(study.spec.types, 0)
    seen = set()
    for a in saved:
        key = (a["participant"], a["page"])
        if key in seen:
            continue
        seen.add(key)
        p = by_id[a["participant"]]
        step = step_of(study.plans[p["slot"]], a["page"])
        if step.kind == "item" and step.page is not None and step.page.type is not None:
            per_type[step.page.type] += 1
    return {
        "study": study.spec.name,
        "slots": len(study.plans),
        "started": len(people),
        "completed": sum(p["completed_at"] is not None for p in people),
        "pages_saved": len(seen),
        "item_pages_per_type": per_type,
    }
