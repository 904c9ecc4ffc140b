"""A real browser (Playwright driving Debian's `chromium`) goes through a whole participant session
by keyboard alone, on a phone-sized screen: consent, instructions, every item with its ratings and
verification question, a reload in the middle that resumes, demographics, the completion code.

Playwright's own browser download is not reachable here: it is pointed at the system executable
(`TRACEKD_CHROMIUM`, default /usr/bin/chromium). Without it the test is skipped on a developer
machine and FAILS where TRACEKD_REQUIRE_BROWSER is set (CI: .ci/run installs chromium and sets it)."""

from __future__ import annotations

import re

from browser import CHROMIUM, need_browser
from humanstudy_helpers import make_sources, make_study, server
from tracekd.humanstudy.export import open_store, rows


def _rate(page, value: int) -> None:
    """Tab into a radio group, pick the first choice with Space, move to `value` with the arrows."""
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    for _ in range(value - 1):
        page.keyboard.press("ArrowRight")


def test_a_whole_session_by_keyboard_with_a_reload(tmp_path):
    need_browser()
    from playwright.sync_api import sync_playwright

    root = make_sources(tmp_path, hostile=True)
    study, folder = make_study(root, participants=4, items_per_participant=4, verification_share=0.5)
    with server(folder) as (base, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 375, "height": 667}).new_page()
        page.goto(f"{base}/?PROLIFIC_PID=BROWSER01&STUDY_ID=S1&SESSION_ID=X1")
        assert page.locator("h1").inner_text() == "Consent"
        page.keyboard.press("Tab")
        page.keyboard.press("Space")  # the consent box
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Instructions")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        n_pages = len(study.plans[0])
        said_no = 0
        for k in range(1, n_pages + 1):
            page.wait_for_selector(f"text=Page {k} of {n_pages}")
            if k == 3:  # a reload in the middle resumes on the same page
                page.reload()
                page.wait_for_selector(f"text=Page {k} of {n_pages}")
            width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert width[0] <= width[1], f"page {k} scrolls sideways on a phone: {width}"
            attention = "attention check" in page.locator("#trace").inner_text()
            for q in range(6):
                _rate(page, 1 if attention else 4 - (q == 5))
            page.keyboard.press("Tab")
            page.keyboard.press("Space")  # verify: yes
            if k % 2 == 0 and not attention:
                page.keyboard.press("ArrowRight")  # no
                page.keyboard.press("Tab")
                page.keyboard.press("Space")  # step 1 is wrong
                said_no += 1
            else:
                page.keyboard.press("Tab")  # into the wrong-step group, leaving it empty
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.tagName") == "BUTTON"
            page.keyboard.press("Enter")
        page.wait_for_selector("text=About you")
        for _ in range(3):
            page.keyboard.press("Tab")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("#code")
        assert page.locator("#code").inner_text() == "C0DE42"
        assert page.evaluate("window.__pwned === undefined")  # no hostile script ran
        browser.close()
    recs = rows(study, open_store(folder, None))
    items = [r for r in recs if r["kind"] == "item" and r["attention"] == 0]
    assert len({r["page"] for r in items}) == 4
    by_q = {(r["page"], r["question"]): r["value"] for r in items}
    assert all(
        by_q[(p, "interp_understand")] == "4" and by_q[(p, "tlx_frustration")] == "3"
        for p in {r["page"] for r in items}
    )
    assert sum(v == "no" for (_, q), v in by_q.items() if q == "verify") == said_no > 0
    assert {r["question"]: r["value"] for r in recs if r["kind"] == "demographics"} == {
        "age": "25-34",
        "education": "bachelor",
        "ai_use": "monthly",
    }  # the second choice of each list
    attention = [r for r in recs if r["attention"] == 1 and r["question"] == "interp_understand"]
    assert attention and all(r["value"] == "1" for r in attention)
    assert all(re.fullmatch(r"\d+(\.\d+)?", str(r["seconds"])) for r in items)
