"""One writer per memory directory: an exclusive lock file that names its holder.

Two processes that save into one memory directory destroy each other's work: each save writes its
own manifest and deletes the data files that manifest does not reference (persistence.py). So a
writer holds `MemoryDirLock` on the directory (an `flock` on `<dir>/memory.lock`, through
portalocker) for as long as it writes there: the node from configure to cleanup, `save_memory`
for one save when nobody in this process holds it already. The lock file records who holds it
(pid, host, what), so a refused writer can say who is in the way. The operating system drops the
lock when its holder exits, however it exits, so a crash leaves no stale lock behind (the file
stays, with the last holder's details, and is simply taken over).

Locks are per open file: two holders in one process exclude each other too. `held_here(dir)`
tells whether this process holds a directory's lock (then its own saves go through).
"""
from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import portalocker

LOCK_FILE = "memory.lock"

_held: dict[str, "MemoryDirLock"] = {}  # resolved directory -> the lock this process holds on it
_held_guard = threading.Lock()


class MemoryDirBusy(RuntimeError):
    """Another writer holds the memory directory's lock. `holder` is what its lock file says."""

    def __init__(self, directory: Path, holder: dict, fix: str = ""):
        self.directory, self.holder = directory, holder
        super().__init__(f"memory directory {str(directory)!r} is in use by {describe_holder(holder)}; "
                         "two writers would overwrite each other's memory" + (f"; {fix}" if fix else ""))


def describe_holder(holder: dict) -> str:
    """'pid 123 on host robot1 (node /robot1/rns)' from a lock file's record."""
    if not holder:
        return "another process (its lock file names no holder)"
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    return text + (f" ({holder['owner']})" if holder.get("owner") else "")


def read_holder(directory: str | os.PathLike) -> dict:
    """What the lock file of `directory` says about its (last) holder; {} if nothing readable."""
    try:
        record = json.loads((Path(directory) / LOCK_FILE).read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _key(directory: Path) -> str:
    return str(directory.expanduser().resolve())


def held_here(directory: str | os.PathLike) -> bool:
    """Whether this process holds the lock of `directory`."""
    with _held_guard:
        return _key(Path(directory)) in _held


class MemoryDirLock:
    """Exclusive lock of one memory directory (created if missing) while held.

    `acquire()` raises MemoryDirBusy when another writer holds it, OSError when the directory
    cannot be created or the lock file not written (the reason and path are in the error).
    Usable as a context manager. `fix` ends the MemoryDirBusy message: how the caller's user
    picks another directory (the node: `-p memory_dir:=...`).
    """

    def __init__(self, directory: str | os.PathLike, owner: str = "", fix: str = ""):
        self.directory = Path(directory).expanduser()
        self.owner = owner  # who holds it, in words ("node /robot1/rns"), shown to refused writers
        self.fix = fix
        self._lock: portalocker.Lock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self) -> "MemoryDirLock":
        if self._lock is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = portalocker.Lock(self.directory / LOCK_FILE, mode="w", timeout=0, fail_when_locked=True)
        try:
            handle = lock.acquire()
        except portalocker.exceptions.AlreadyLocked:
            raise MemoryDirBusy(self.directory, read_holder(self.directory), self.fix) from None
        try:  # the lock is ours: say who we are (the file was truncated after locking)
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "owner": self.owner}))
            handle.flush()
        except OSError:
            lock.release()
            raise
        self._lock = lock
        with _held_guard:
            _held[_key(self.directory)] = self
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        with _held_guard:
            if _held.get(_key(self.directory)) is self:
                del _held[_key(self.directory)]
        self._lock.release()
        self._lock = None

    def __enter__(self) -> "MemoryDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
