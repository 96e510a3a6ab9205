"""One process per run directory: an advisory lock held for the life of a run.

``RUN/lock`` is locked with ``flock`` (the kernel releases it when the holder dies,
even under SIGKILL) and holds a JSON record of the holder (pid, host, start time)
for the message a second process gets.  Where the file system refuses ``flock``,
the record alone decides: a record of a process on this host that no longer runs
is stale and taken over; any other record means the run is in use.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from typing import Any

LOCK = "lock"  # RUN/lock


class RunInUseError(RuntimeError):
    """Another live process holds the run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(record: dict[str, Any]) -> str:
    since = record.get("since", "")
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')}" + (f" (since {since})" if since else "")


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/lock`` or raises :class:`RunInUseError`.

    ``taken_over`` is the record of a dead holder whose stale lock was taken over (else None).
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK)
        self.fd: int | None = None
        self.taken_over: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                record = json.loads(fh.read() or "{}")
            return record if isinstance(record, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        previous = self._read()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise RunInUseError(
                    f"run {self.run_dir} is in use by {_describe(self._read())}; "
                    f"wait for it to finish or stop that process"
                ) from None
            # no flock on this file system: the record alone decides
            if previous.get("pid") and not (
                previous.get("host") == socket.gethostname() and not _alive(int(previous["pid"]))
            ):
                os.close(fd)
                raise RunInUseError(
                    f"run {self.run_dir} is in use by {_describe(previous)} (lock file "
                    f"{self.path}; this file system has no flock: delete the file if that "
                    f"process is gone)"
                ) from None
        if previous.get("pid"):
            self.taken_over = previous  # a holder that died without releasing (kill -9, power loss)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # an empty record: nobody holds the run
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
