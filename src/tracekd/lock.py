"""One tracekd process per output folder: an OS file lock that dies with its process.

`folder_lock(folder, what)` takes `fcntl.flock` on `folder/.tracekd.lock` (created if needed, never
deleted: the lock is the open file, not the file's existence). The kernel drops it when the
process ends however it ends - a SIGKILL never leaves a stale lock. A second process gets an
`InputError` naming the folder and the holder's pid (exit 2) and touches nothing; the first is
unharmed. With `wait=True` the second waits for the lock instead (`tracekd run`'s short steps
shared by the processes of one run folder). In a multi-process (`accelerate launch`) run only
rank 0 takes the lock: the ranks are one job.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracekd.errors import InputError

LOCK_NAME = ".tracekd.lock"


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class FolderBusy(InputError):
    """Another process holds the folder's lock."""


@contextmanager
def folder_lock(folder: str | Path, what: str, lock_name: str = LOCK_NAME, wait: bool = False) -> Iterator[None]:
    """Hold the lock of `folder` (made if missing) for the body; `what` names the command. Held by
    another process: `FolderBusy`, or with `wait` the body runs once the other process lets go."""
    folder = Path(folder)
    if _rank() != 0:
        yield
        return
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / lock_name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise FolderBusy(
                f"another tracekd process (pid {holder}) is working in this folder; "
                f"wait for it to finish, or use another output for {what}",
                folder,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
