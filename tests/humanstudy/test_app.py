"""The study's web app through Starlette's test client: a whole session, resuming, a second tab,
forged and out-of-range values, forged participant ids, hostile strings, the admin view, export."""

from __future__ import annotations

import csv
import io

import pytest
from starlette.testclient import TestClient

from humanstudy_helpers import answer_for, item_answers, make_sources, make_study, page_index
from tracekd.humanstudy.app import create_app
from tracekd.humanstudy.export import COLUMNS, open_store, rows, write_csv
from tracekd.humanstudy.spec import load_study


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("hs-app"), hostile=True)


@pytest.fixture
def study(sources, tmp_path):
    return make_study(sources, name=f"s-{tmp_path.name}")


def _client(folder, pid="PID0001", host="127.0.0.1"):
    c = TestClient(create_app(folder), base_url="http://testserver", client=(host, 50000))
    r = c.get(f"/?PROLIFIC_PID={pid}&STUDY_ID=S1&SESSION_ID=X1")
    return c, r


def _finish(c, r, limit=40):
    pages = []
    for _ in range(limit):
        if "completion code" in r.text:
            return r, pages
        pages.append(page_index(r.text))
        r = c.post("/page", data={"page": str(pages[-1]), **answer_for(r.text)})
        assert r.status_code == 200, r.text
    raise AssertionError("did not finish")


def test_a_whole_session_and_the_export(study):
    s, folder = study
    c, r = _client(folder)
    assert r.status_code == 200 and "Consent" in r.text
    r, pages = _finish(c, r)
    assert "C0DE42" in r.text
    assert pages == list(range(len(pages)))  # consent, instructions, 9 item pages, demographics
    assert len(pages) == 2 + len(s.plans[0]) + 1
    recs = rows(s, open_store(folder, None))
    item_rows = [x for x in recs if x["kind"] == "item"]
    assert len(item_rows) == 9 * (6 + 1)  # 6 Likert + verify (no wrong_step: every answer was "yes")
    assert {x["question"] for x in recs if x["kind"] == "demographics"} == {"age", "education", "ai_use"}
    assert all(x["prolific_pid"] == "PID0001" and x["completed"] == 1 for x in recs)
    wrong = [x for x in item_rows if x["wrong"] == 1]
    assert wrong and all(x["true_step"] and x["wrong_kind"] for x in wrong)
    buf = folder / "a.csv"
    write_csv(buf, recs)
    table = list(csv.DictReader(io.StringIO(buf.read_text())))
    assert tuple(table[0]) == COLUMNS and len(table) == len(recs)
    # admin progress from loopback
    prog = c.get("/admin?fmt=json").json()
    assert prog["completed"] == 1 and sum(prog["item_pages_per_type"].values()) == 8


def test_reload_and_return_resume_and_the_wrong_step_is_never_sent(study):
    s, folder = study
    c, r = _client(folder)
    for _ in range(4):
        r = c.post("/page", data={"page": str(page_index(r.text)), **answer_for(r.text)})
    at = page_index(r.text)
    assert c.get("/page").text.count(f'name="page" value="{at}"') == 1  # reload: the same page
    r = c.get("/?PROLIFIC_PID=PID0001&STUDY_ID=S1&SESSION_ID=X1")  # a return through the link
    assert page_index(r.text) == at
    for shown in s.traces:
        assert "wrong_kind" not in r.text and shown.wrong.kind not in r.text


def test_a_second_tab_cannot_submit_twice(study):
    s, folder = study
    c, r = _client(folder)
    for _ in range(2):
        r = c.post("/page", data={"page": str(page_index(r.text)), **answer_for(r.text)})
    idx = page_index(r.text)
    first = c.post("/page", data={"page": str(idx), **item_answers(r.text, value=2)})
    second = c.post("/page", data={"page": str(idx), **item_answers(r.text, value=5)})  # the other tab
    assert first.status_code == 200 and second.status_code == 409
    assert "already answered" in second.text
    saved = [x for x in rows(s, open_store(folder, None)) if x["page"] == 1]
    assert saved and {x["value"] for x in saved if x["question"].startswith("interp")} == {"2"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"interp_clear": "6"}, "interp_clear: &#39;6&#39; is not one of the choices"),
        ({"interp_clear": "0"}, "is not one of the choices"),
        ({"tlx_mental": "abc"}, "is not one of the choices"),
        ({"interp_follow": None}, "missing: interp_follow"),
        ({"verify": "maybe"}, "verify: &#39;maybe&#39; is not one of the choices"),
        ({"verify": "no", "wrong_step": "99"}, "wrong_step: &#39;99&#39; is not one of the choices"),
        ({"verify": "no", "wrong_step": None}, "missing: wrong_step"),
        ({"is_admin": "1"}, "unexpected field(s): is_admin"),
    ],
)
def test_out_of_range_missing_or_forged_values_are_refused(study, change, needle):
    s, folder = study
    c, r = _client(folder)
    for _ in range(2):
        r = c.post("/page", data={"page": str(page_index(r.text)), **answer_for(r.text)})
    idx = page_index(r.text)
    form = {"page": str(idx), **item_answers(r.text)}
    for k, v in change.items():
        if v is None:
            form.pop(k, None)
        else:
            form[k] = v
    bad = c.post("/page", data=form)
    assert bad.status_code == 422 and needle in bad.text, bad.text[:3000]
    assert page_index(bad.text) == idx  # the same page again, nothing saved
    assert not [x for x in rows(s, open_store(folder, None)) if x["kind"] == "item"]


def test_consent_is_required(study):
    _, folder = study
    c, r = _client(folder)
    r = c.post("/page", data={"page": "0"})
    assert r.status_code == 422 and "I agree" in r.text


def test_forged_or_replayed_participant_ids_cannot_write_anothers_answers(study):
    _, folder = study
    alice, _ = _client(folder, "ALICE01")
    assert alice.post("/page", data={"page": "0", "consent": "yes"}).status_code == 200
    mallory, r2 = _client(folder, "ALICE01")  # the same PID, another browser
    assert r2.status_code == 403 and "another browser" in r2.text
    assert mallory.post("/page", data={"page": "1"}).status_code == 401
    mallory.cookies.set("tracekd_hs", "forged-token")
    assert mallory.post("/page", data={"page": "1"}).status_code == 401
    for bad in ("../../etc", "A" * 65, "<b>x</b>"):
        assert TestClient(create_app(folder)).get("/", params={"PROLIFIC_PID": bad}).status_code == 400
    people = open_store(folder, None).all_participants()
    assert [p["pid"] for p in people] == ["ALICE01"] and people[0]["page"] == 1
    assert page_index(alice.get("/page").text) == 1


def test_hostile_strings_are_escaped(study):
    _, folder = study
    c, r = _client(folder)
    for _ in range(2):
        r = c.post("/page", data={"page": str(page_index(r.text)), **answer_for(r.text)})
    seen = r.text
    for _ in range(4):
        r = c.post("/page", data={"page": str(page_index(r.text)), **answer_for(r.text)})
        seen += r.text
    assert "<script>" not in seen and "<img src=x" not in seen
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in seen


def test_the_study_is_full_and_pids_are_checked(study):
    s, folder = study
    for k in range(len(s.plans)):
        _, r = _client(folder, f"P{k:04d}")
        assert r.status_code == 200
    _, r = _client(folder, "LATE001")
    assert r.status_code == 409 and "full" in r.text
    slots = sorted(p["slot"] for p in open_store(folder, None).all_participants())
    assert slots == list(range(len(s.plans)))
    _, r = _client(folder, "P0000")  # a known PID without its cookie (another browser)
    assert r.status_code == 403


def test_admin_needs_the_token_away_from_loopback(study):
    _, folder = study
    far = TestClient(create_app(folder, admin_token="s3cret"), client=("203.0.113.9", 1))
    assert far.get("/admin").status_code == 403
    assert far.get("/admin?token=nope").status_code == 403
    assert far.get("/admin?token=s3cret&fmt=json").json()["slots"] == 8
    near = TestClient(create_app(folder, admin_token="s3cret"), client=("127.0.0.1", 1))
    assert near.get("/admin").status_code == 403  # a token set: needed from loopback too (a local proxy)
    assert TestClient(create_app(folder), client=("203.0.113.9", 1)).get("/admin").status_code == 403


def test_without_a_prolific_id(study, sources, tmp_path):
    _, folder = study
    r = TestClient(create_app(folder)).get("/")
    assert r.status_code == 400 and "Prolific" in r.text
    _, anon = make_study(sources, name=f"anon-{tmp_path.name}", allow_anonymous=True)
    c = TestClient(create_app(anon))
    assert "Consent" in c.get("/").text
    assert load_study(anon).spec.allow_anonymous
