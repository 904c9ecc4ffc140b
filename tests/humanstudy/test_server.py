"""The study server as participants meet it: `tracekd humanstudy serve` in a subprocess (uvicorn on
127.0.0.1, an ephemeral port), driven over real HTTP by httpx. 100 participants at once lose
nothing and keep the design balanced; a server killed (SIGKILL) mid-study and restarted on the
same database loses no acknowledged answer and gives no slot twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx2
import pytest

from humanstudy_helpers import answer_for, make_sources, make_study, page_index, server
from tracekd.humanstudy.export import open_store, rows

DEADLINE = 240  # seconds: the whole concurrent run is bounded


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("hs-server"))


async def _participant(base: str, pid: str, acked: list, cookies=None) -> dict:
    """One participant from the link to the completion page (or until the server goes away).
    `acked` collects (pid, page) of every page the server acknowledged."""
    async with httpx2.AsyncClient(base_url=base, follow_redirects=True, timeout=60, cookies=cookies) as c:
        state = {"pid": pid, "done": False, "error": None, "cookies": None}
        try:
            r = await c.get("/", params={"PROLIFIC_PID": pid, "STUDY_ID": "S", "SESSION_ID": pid})
            while "completion code" not in r.text:
                if r.status_code != 200:
                    raise AssertionError(f"{pid}: {r.status_code} {r.text[:300]}")
                idx = page_index(r.text)
                r = await c.post("/page", data={"page": str(idx), **answer_for(r.text)})
                if r.status_code == 200:
                    acked.append((pid, idx))
            state["done"] = "completion code" in r.text
        except httpx2.TransportError as e:  # the server was killed under this request
            state["error"] = repr(e)
        state["cookies"] = dict(c.cookies)
        return state


def _balanced(study, people: list[dict]) -> None:
    slots = [p["slot"] for p in people]
    assert sorted(slots) == list(range(len(slots)))  # every slot given once
    cells = Counter((pg.item, pg.type) for s in slots for pg in study.plans[s] if pg.item is not None)
    assert len(set(cells.values())) == 1, cells


def test_100_participants_at_once_lose_nothing_and_stay_balanced(sources, tmp_path):
    study, folder = make_study(
        sources,
        name=f"s-{tmp_path.name}",
        participants=100,
        items_per_participant=4,
        verification_share=0,
        attention_checks=1,
    )
    acked: list = []
    with server(folder) as (base, _):
        t0 = time.monotonic()

        async def everyone():
            return await asyncio.wait_for(
                asyncio.gather(*(_participant(base, f"P{k:04d}", acked) for k in range(100))), DEADLINE
            )

        states = asyncio.run(everyone())
        took = time.monotonic() - t0
    assert all(s["done"] for s in states), [s for s in states if not s["done"]][:3]
    assert took < DEADLINE
    store = open_store(folder, None)
    people = store.all_participants()
    assert len(people) == 100 and all(p["completed_at"] is not None for p in people)
    _balanced(study, people)
    recs = rows(study, store)
    pages = {(r["prolific_pid"], r["slot"], r["kind"], r["page"], r["question"]) for r in recs}
    assert len(pages) == len(recs)  # no answer saved twice
    per_person = Counter(r["prolific_pid"] for r in recs)
    assert set(per_person.values()) == {5 * 7 + 3}  # 4 items + 1 check, 7 answers each; demographics
    assert len(acked) == 100 * (2 + 5 + 1)
    assert Counter(
        r["type"] for r in recs if r["kind"] == "item" and r["attention"] == 0 and r["question"] == "verify"
    ) == dict.fromkeys(study.spec.types, 100)


def test_a_killed_server_loses_no_acknowledged_answer_and_gives_no_slot_twice(sources, tmp_path):
    study, folder = make_study(
        sources, name=f"s-{tmp_path.name}", participants=12, items_per_participant=4, verification_share=0
    )
    acked: list = []
    with server(folder) as (base, proc):

        async def until_killed():
            tasks = [asyncio.create_task(_participant(base, f"K{k:03d}", acked)) for k in range(8)]
            deadline = time.monotonic() + 120
            while len(acked) < 20:  # let about a third of the pages be saved, then kill mid-flight
                assert time.monotonic() < deadline and not all(t.done() for t in tasks), "no progress"
                await asyncio.sleep(0.005)
            proc.kill()
            return await asyncio.wait_for(asyncio.gather(*tasks), 60)

        first = asyncio.run(until_killed())
        proc.wait(timeout=30)
    assert any(s["error"] for s in first)
    store = open_store(folder, None)
    saved = Counter((r["prolific_pid"], r["kind"], r["page"]) for r in rows(study, store))
    for pid, idx in acked:  # every acknowledged page is in the database, with all its answers
        person = next(p for p in store.all_participants() if p["pid"] == pid)
        assert person["page"] > idx
        if 2 <= idx < 2 + 5:
            assert saved[(pid, "item", idx - 1)] == 7
    people_before = {p["pid"]: p["slot"] for p in store.all_participants()}
    with server(folder) as (base, _):

        async def resume():
            again = [_participant(base, s["pid"], acked, cookies=s["cookies"]) for s in first]
            new = [_participant(base, f"N{k:03d}", acked) for k in range(4)]
            return await asyncio.wait_for(asyncio.gather(*again, *new), 120)

        second = asyncio.run(resume())
    assert all(s["done"] for s in second), second
    people = store.all_participants()
    assert {p["pid"]: p["slot"] for p in people if p["pid"] in people_before} == people_before  # resumed, same slot
    _balanced(study, people)
    recs = rows(study, store)
    keys = [(r["prolific_pid"], r["kind"], r["page"], r["question"]) for r in recs]
    assert len(keys) == len(set(keys))
    assert set(Counter(r["prolific_pid"] for r in recs).values()) == {5 * 7 + 3}
    assert sum(saved.values()) > 0
