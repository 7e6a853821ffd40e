"""An exclusive lock on a run directory, so two workbench processes never write the same run."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

LOCK_NAME = ".workbench.lock"
_held: dict[Path, int] = {}  # run dirs this process holds -> nesting depth (run holds it, then train asks again)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def holder(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the lock file says about its last holder (pid, host, since, command), or None."""
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str], *, command: str = "workbench", on_message: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``<run_dir>/.workbench.lock`` for the block; another process asking for it fails at once.

    The lock is an OS file lock (released by the kernel when its process dies, even by kill -9) on a
    file that names its holder's pid. A file naming a pid that no longer holds the lock is a stale
    lock left by a killed run: it is taken over, with a message. Nested use in one process is fine.
    """
    path = Path(run_dir).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    path.mkdir(parents=True, exist_ok=True)
    lock_file = path / LOCK_NAME
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise WorkbenchError(f"cannot lock the run directory {path}: {e.strerror}", "is the folder writable?") from None
    try:
        _acquire(fd, path)
        before = holder(path)
        if before and before["pid"] != os.getpid() and on_message:
            state = "is no longer running" if not pid_alive(before["pid"]) else "no longer holds it"
            on_message(f"took over a stale lock on {path}: pid {before['pid']} ({before.get('command', 'workbench')}, "
                       f"since {before.get('since', '?')}) {state}, so that run was interrupted")  # fmt: skip
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _held[path] = 1
        try:
            yield
        finally:
            del _held[path]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # an empty file is a free lock; a file naming a pid is a run that did not finish
    finally:
        os.close(fd)  # closing releases the OS lock


def _acquire(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the pid in the file decides
        info = holder(path)
        if info and info["pid"] != os.getpid() and pid_alive(info["pid"]):
            raise _busy(path, info) from None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(path, holder(path)) from None
    except OSError:  # a file system without flock support: fall back on the pid check
        info = holder(path)
        if info and info["pid"] != os.getpid() and pid_alive(info["pid"]):
            raise _busy(path, info) from None


def _busy(path: Path, info: dict[str, Any] | None) -> WorkbenchError:
    who = f"pid {info['pid']}, {info.get('command', 'workbench')}, since {info.get('since', '?')}" if info else "another process"
    return WorkbenchError(
        f"run directory {path} is in use by another workbench run ({who})",
        "wait for it to finish, or give this run its own run_dir (run_dir=... or --run-dir)",
    )
