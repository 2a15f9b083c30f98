"""A study knows whether it is running: one lock file per study in the runs folder.

The lock is an exclusive ``flock`` on ``RUNS/locks/NAME.lock``, which holds the owner's pid,
host, start time and command line. The kernel releases it when the owner exits however it
exits (SIGKILL too), so a lock is never stale: a study whose lock is free and whose latest
launch is still marked running in MLflow was interrupted. Two launches racing for one study
cannot both hold it. ``flock`` is per machine: on a runs folder shared over NFS by several
machines, launch a study from one machine at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path


def lock_dir(runs: Path) -> Path:
    return runs / "locks"


class StudyLock:
    """``with StudyLock(runs, name):`` holds study ``name``'s lock or raises a one-line
    ValueError naming the process that holds it."""

    def __init__(self, runs: Path, name: str) -> None:
        self.path = lock_dir(runs) / f"{name}.lock"
        self.name = name
        self.fd: int | None = None

    def acquire(self) -> StudyLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read(fd)
            os.close(fd)
            raise ValueError(running_message(self.name, owner)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
            "command": " ".join(sys.argv)[:500],
        }).encode(), 0)  # fmt: skip
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def running_message(name: str, owner: str) -> str:
    """The refusal of a study that is running (``owner``: :func:`holder`'s answer)."""
    return f"study {name!r} is running: {owner}; wait for it to finish, or stop that process first"


def holder(runs: Path, name: str) -> str | None:
    """Who runs study ``name`` in ``runs`` (None when nobody does)."""
    path = lock_dir(runs) / f"{name}.lock"
    if is_free(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        return _read(fd)
    finally:
        os.close(fd)


def is_free(path: Path) -> bool:
    """Whether nobody holds the lock file ``path`` (taken and dropped again to find out)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _read(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        owner = {}
    if "pid" not in owner:
        return "another launch is starting it"
    since = time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"pid {owner['pid']} on {owner.get('host', '?')} since {since}"
