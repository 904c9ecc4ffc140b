"""One tracekd process per output folder: an OS file lock that dies with its process.

`folder_lock(folder, what)` takes `fcntl.flock` on `folder/.tracekd.lock` (created if needed, never
deleted: the lock is the open file, not the file's existence). The kernel drops it when the
process ends however it ends - a SIGKILL never leaves a stale lock. A second process gets an
`InputError` naming the folder and the holder's pid (exit 2) and touches nothing; the first is
unharmed. With `wait=True` the second waits for the lock instead (`tracekd run`'s short steps
shared by the processes of one run folder). In a multi-process (`accelerate launch`) training
only rank 0 takes the lock: the ranks are one job (`job_ranks=True`, train's output only); every
other command locks whatever `RANK` says (a Kubeflow / torchrun job sets it for plain commands too).

Filesystems without `flock` (Lustre without its flock mount option: ENOSYS; some NFS / FUSE
mounts: ENOLCK, EOPNOTSUPP) get a lock file instead: `.tracekd.lock.held`, created atomically
(a hard link, which NFS makes atomic too) with the holder's pid and host, removed when the
holder ends. A lock file whose holder is gone (same host, no such pid) is stale and replaced; one
held on another host cannot be checked and is reported with its path, to delete by hand if that
process is gone. `TRACEKD_LOCK` chooses: `auto` (default: flock, the lock file where flock is not
supported), `flock`, `file`, or `none` (no lock: the caller promises one process per output).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracekd.errors import InputError

LOCK_NAME = ".tracekd.lock"
HELD_SUFFIX = ".held"  # the lock file of the fallback
LOCK_MODES = ("auto", "flock", "file", "none")
NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def lock_mode() -> str:
    mode = os.environ.get("TRACEKD_LOCK", "auto").strip().lower() or "auto"
    if mode not in LOCK_MODES:
        raise InputError(f"TRACEKD_LOCK={mode!r}: choose one of {', '.join(LOCK_MODES)}")
    return mode


WAIT_POLL_S = 0.2  # how often a waiting process looks at a lock file


class FolderBusy(InputError):
    """Another process holds the folder's lock."""


def _busy(folder: Path, holder: str, what: str) -> FolderBusy:
    return FolderBusy(
        f"another tracekd process ({holder}) is working in this folder; "
        f"wait for it to finish, or use another output for {what}",
        folder,
    )


@contextmanager
def folder_lock(
    folder: str | Path, what: str, lock_name: str = LOCK_NAME, wait: bool = False, job_ranks: bool = False
) -> Iterator[None]:
    """Hold the lock of `folder` (made if missing) for the body; `what` names the command. Held by
    another process: `FolderBusy`, or with `wait` the body runs once the other process lets go.
    `job_ranks`: the caller runs in every process of one multi-process job, and only rank 0 locks."""
    folder = Path(folder)
    mode = lock_mode()
    if (job_ranks and _rank() != 0) or mode == "none":
        yield
        return
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "file":
        with _file_lock(folder, folder / (lock_name + HELD_SUFFIX), what, wait):
            yield
        return
    fd = os.open(folder / lock_name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if _flock(fd, folder, folder / lock_name, what, mode, wait):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        else:
            with _file_lock(folder, folder / (lock_name + HELD_SUFFIX), what, wait):
                yield
    finally:
        os.close(fd)


def _flock(fd: int, folder: Path, path: Path, what: str, mode: str, wait: bool = False) -> bool:
    """Take the OS lock; False where the filesystem has none (and `mode` allows the lock file)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        raise _busy(folder, f"pid {holder}", what) from None
    except OSError as e:
        if e.errno not in NO_FLOCK:
            raise
        if mode == "flock":
            raise InputError(
                f"cannot lock: this filesystem does not support flock ({os.strerror(e.errno)}); set "
                "TRACEKD_LOCK=file for a lock file with pid and host, or TRACEKD_LOCK=none to run "
                "without a lock (docs/experiments.md)",
                path,
            ) from None
        return False
    return True


def _holder_alive(record: dict) -> bool | None:
    """True / False for a holder on this host, None when it cannot be known (another host)."""
    if record.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: written by something else, treated as held on an unknown host


@contextmanager
def _file_lock(folder: Path, held: Path, what: str, wait: bool = False) -> Iterator[None]:
    """The fallback: `held` made atomically (a hard link to a file that already has our record).
    With `wait`, a live holder is waited for (polled)."""
    mine = {"pid": os.getpid(), "host": socket.gethostname()}
    tmp = held.with_name(f"{held.name}.{os.getpid()}.new")
    tmp.write_text(json.dumps(mine), encoding="utf-8")
    try:
        changes, told = 0, False
        while True:
            try:
                os.link(tmp, held)
                break
            except FileExistsError:
                record = _read_record(held)
                alive = None if record is None else _holder_alive(record)
                if record is not None and alive is not False:
                    holder = f"pid {record.get('pid', '?')} on {record.get('host', '?')}"
                    if alive is None:
                        holder += f"; if it is gone, delete {held}"
                    if wait:
                        if not told:  # waiting on a holder that may be gone: say so once
                            print(f"tracekd: waiting for the lock of {folder} ({holder})", file=sys.stderr)
                            told = True
                        time.sleep(WAIT_POLL_S)
                        continue
                    raise _busy(folder, holder, what) from None
                if alive is False:  # stale: its holder is gone
                    stale = held.with_name(f"{held.name}.{os.getpid()}.stale")
                    try:
                        os.rename(held, stale)
                    except FileNotFoundError:
                        pass
                    else:
                        if _read_record(stale) == record:
                            stale.unlink()
                        else:  # another process replaced the stale lock with its own first: give it back
                            with contextlib.suppress(FileExistsError):
                                os.link(stale, held)
                            stale.unlink()
                if not wait:
                    changes += 1  # released in between, or stale and removed: try again
                if changes >= 3:
                    raise InputError("could not take the lock file (it keeps changing hands)", held) from None
    finally:
        tmp.unlink(missing_ok=True)
    try:
        yield
    finally:
        if _read_record(held) == mine:
            held.unlink(missing_ok=True)
