"""The answers database (SQLAlchemy Core). SQLite in WAL mode is the embedded default (a file
beside the study file); any SQLAlchemy URL works for others.

Integrity is the database's, not the server's: a participant slot is claimed by one INSERT under a
UNIQUE constraint (no slot, so no item sequence, is given twice, whatever the number of servers
or restarts); a page is saved in one transaction that first moves the participant's page pointer
from that page to the next (UPDATE ... WHERE page = ?) — a replayed, stale or second-tab
submission updates no row and saves nothing. Answers are write-once (primary key participant,
page, question). A transaction commits before the reply is sent, so a killed server loses no
answer it acknowledged.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

metadata = MetaData()
participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("slot", Integer, unique=True, nullable=False),
    Column("pid", String(64), unique=True, nullable=False),
    Column("study_id", String(64)),
    Column("session_id", String(64)),
    Column("token", String(64), unique=True, nullable=False),
    Column("page", Integer, nullable=False, default=0),
    Column("page_shown_at", Float),
    Column("started_at", Float, nullable=False),
    Column("completed_at", Float),
)
answers = Table(
    "answers",
    metadata,
    Column("participant", Integer, ForeignKey("participants.id"), primary_key=True),
    Column("page", Integer, primary_key=True),
    Column("question", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("seconds", Float),
    Column("saved_at", Float, nullable=False),
)


class StudyFull(Exception):
    """Every participant slot is taken."""


@dataclass(frozen=True)
class Participant:
    id: int
    slot: int
    pid: str
    token: str
    page: int
    page_shown_at: float | None
    completed_at: float | None


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no committed transaction
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Answers:
    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {})
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create(self) -> None:
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _participant(self, conn, where) -> Participant | None:
        row = conn.execute(select(participants).where(where)).mappings().first()
        if row is None:
            return None
        return Participant(
            row["id"], row["slot"], row["pid"], row["token"], row["page"], row["page_shown_at"], row["completed_at"]
        )

    def by_token(self, token: str) -> Participant | None:
        with self.engine.connect() as conn:
            return self._participant(conn, participants.c.token == token)

    def by_pid(self, pid: str) -> Participant | None:
        with self.engine.connect() as conn:
            return self._participant(conn, participants.c.pid == pid)

    def join(self, pid: str, slots: int, study_id: str | None = None, session_id: str | None = None, now=None):
        """(participant, new): the participant of `pid`, claiming the lowest free slot if new. One
        INSERT ... SELECT statement claims the slot (atomic in every database; the UNIQUE slot
        refuses a concurrent claim of the same one, which then looks again)."""
        now = time.time() if now is None else now
        for _ in range(1000):
            existing = self.by_pid(pid)
            if existing is not None:
                return existing, False
            next_slot = select(func.coalesce(func.max(participants.c.slot), -1) + 1).scalar_subquery()
            values = select(
                next_slot,
                literal(pid),
                literal(study_id, String),
                literal(session_id, String),
                literal(secrets.token_urlsafe(24)),
                literal(0),
                literal(now, Float),
            ).where(next_slot < slots)
            cols = ["slot", "pid", "study_id", "session_id", "token", "page", "started_at"]
            try:
                with self.engine.begin() as conn:
                    claimed = conn.execute(insert(participants).from_select(cols, values)).rowcount
            except IntegrityError:
                continue  # another request took this slot (or this pid) first: look again
            if claimed == 0:
                raise StudyFull
            return self.by_pid(pid), True
        raise RuntimeError("could not claim a participant slot")

    def shown(self, participant: Participant, now: float | None = None) -> None:
        """Note when the participant's current page was first shown (a reload keeps the first time)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(participants)
                .where(participants.c.id == participant.id, participants.c.page_shown_at.is_(None))
                .values(page_shown_at=time.time() if now is None else now)
            )

    def save(
        self, participant: Participant, page: int, values: dict[str, str], last: bool, now: float | None = None
    ) -> bool:
        """Save one page's answers and move to the next page, all or nothing; False when `page` is
        not the participant's current page (already saved, e.g. from another tab)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:  # the first statement writes: the lock is taken at once
            mine = (participants.c.id == participant.id, participants.c.page == page)
            moved = conn.execute(
                update(participants).where(*mine).values(page=page + 1, completed_at=now if last else None)
            ).rowcount
            if moved != 1:
                return False
            shown_at = conn.execute(
                select(participants.c.page_shown_at).where(participants.c.id == participant.id)
            ).first()
            conn.execute(update(participants).where(participants.c.id == participant.id).values(page_shown_at=None))
            seconds = None if shown_at is None or shown_at[0] is None else max(now - shown_at[0], 0.0)
            if values:
                conn.execute(
                    insert(answers),
                    [
                        {
                            "participant": participant.id,
                            "page": page,
                            "question": q,
                            "value": v,
                            "seconds": seconds,
                            "saved_at": now,
                        }
                        for q, v in values.items()
                    ],
                )
        return True

    def all_participants(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(participants).order_by(participants.c.id)).mappings()]

    def all_answers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = select(answers).order_by(answers.c.participant, answers.c.page, answers.c.question)
            return [dict(r) for r in conn.execute(q).mappings()]
