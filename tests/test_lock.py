"""Filesystems without flock (ENOSYS, ENOLCK, EOPNOTSUPP, simulated): the lock file with pid and host,
stale detection, TRACEKD_LOCK=flock naming the lock file and the cause, TRACEKD_LOCK=none."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys

import pytest

from tracekd.errors import InputError
from tracekd.lock import FolderBusy, folder_lock


@pytest.fixture(params=[errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def no_flock(request, monkeypatch):
    def flock(fd, op):
        raise OSError(request.param, "simulated")

    monkeypatch.setattr(fcntl, "flock", flock)
    return request.param


def test_flock_mode_names_the_lock_file_and_the_cause(tmp_path, no_flock, monkeypatch):
    monkeypatch.setenv("TRACEKD_LOCK", "flock")
    with pytest.raises(InputError) as e, folder_lock(tmp_path, "test"):
        pass
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / '.tracekd.lock'}: cannot lock: this filesystem does not support flock")
    assert os.strerror(no_flock) in msg and "TRACEKD_LOCK=file" in msg


def test_auto_falls_back_to_a_lock_file_with_pid_and_host(tmp_path, no_flock):
    held = tmp_path / ".tracekd.lock.held"
    with folder_lock(tmp_path, "test"):
        record = json.loads(held.read_text())
        assert record["host"] == socket.gethostname()
        with (
            pytest.raises(InputError, match=r"another tracekd process \(pid \d+ on .+\) is working"),
            folder_lock(tmp_path, "test"),
        ):
            pass
        assert held.is_file()  # the refused second taker did not remove it
    assert not held.exists()
    with folder_lock(tmp_path, "test"):  # free again
        pass


def test_a_stale_lock_file_is_replaced(tmp_path, no_flock):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    held = tmp_path / ".tracekd.lock.held"
    held.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with folder_lock(tmp_path, "test"):
        assert json.loads(held.read_text())["pid"] != dead.pid
    assert not held.exists()


def test_a_lock_file_of_another_host_is_reported_with_its_path(tmp_path, no_flock):
    held = tmp_path / ".tracekd.lock.held"
    held.write_text(json.dumps({"pid": 1234, "host": "elsewhere"}))
    with (
        pytest.raises(InputError, match=rf"pid 1234 on elsewhere; if it is gone, delete {held}"),
        folder_lock(tmp_path, "test"),
    ):
        pass
    assert held.is_file()


def test_file_mode_works_where_flock_does_too(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEKD_LOCK", "file")
    with folder_lock(tmp_path, "test"):
        assert (tmp_path / ".tracekd.lock.held").is_file()
        with pytest.raises(InputError, match="another tracekd process"), folder_lock(tmp_path, "test"):
            pass


def test_none_takes_no_lock_and_a_bad_mode_is_one_error(tmp_path, no_flock, monkeypatch):
    monkeypatch.setenv("TRACEKD_LOCK", "none")
    with folder_lock(tmp_path, "test"), folder_lock(tmp_path, "test"):
        assert not (tmp_path / ".tracekd.lock.held").exists()
    monkeypatch.setenv("TRACEKD_LOCK", "nfs")
    with (
        pytest.raises(InputError, match="TRACEKD_LOCK='nfs': choose one of auto, flock, file, none"),
        folder_lock(tmp_path, "test"),
    ):
        pass


def test_other_os_errors_still_raise(tmp_path, monkeypatch):
    def flock(fd, op):
        raise OSError(errno.EIO, "io")

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(OSError, match="io"), folder_lock(tmp_path, "test"):
        pass


def test_a_waiting_process_waits_for_the_lock_file(tmp_path, no_flock):
    """`wait=True` (the shared steps of several `tracekd run` processes) on a filesystem without
    flock: a live holder is waited for, not refused; without `wait` it is refused."""
    import threading
    import time

    from tracekd.lock import FolderBusy

    held, order = threading.Event(), []

    def holder():
        with folder_lock(tmp_path, "holder"):
            held.set()
            time.sleep(0.6)
            order.append("released")

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with pytest.raises(FolderBusy), folder_lock(tmp_path, "test"):
        pass
    with folder_lock(tmp_path, "test", wait=True):
        order.append("acquired")
    t.join()
    assert order == ["released", "acquired"]


def test_rank_in_the_environment_skips_only_the_jobs_own_lock(tmp_path, monkeypatch):
    """A plain command in a job that sets RANK (Kubeflow, torchrun) still locks; only the ranks of
    one multi-process training (job_ranks) leave the lock to rank 0."""
    monkeypatch.setenv("RANK", "1")
    with folder_lock(tmp_path, "first"):
        with pytest.raises(FolderBusy), folder_lock(tmp_path, "second"):
            pass
        with folder_lock(tmp_path, "a rank of the job", job_ranks=True):
            pass
