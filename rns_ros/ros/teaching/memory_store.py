"""Where the node keeps what it was taught: the support memory saved to `memory_dir` after every
change and restored on configure.

The change always stands in the running node; a failed save is reported loudly (log, service
answer, /diagnostics) instead of undoing it. A corrupt memory is set aside by `load_memory` (never
overwritten) and reported; a memory this version cannot read (e.g. a newer format) is kept and
autosave is switched off, so it is never overwritten either. (The node holds the directory's lock,
rns_ros.core.memory.dir_lock, from configure to cleanup: one writer per memory.)

A save is taken in two steps so that frames do not wait for the disk: `start_save` copies the memory
(under the engine lock, quick), `PendingSave.write` writes that copy (after the lock is let go; the
request is answered after it). Writes happen one at a time, and a copy older than the one already
on disk is not written (the newer one holds its change too), so the directory never goes back.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from rns_ros.core.memory.dir_lock import MemoryDirBusy, describe_holder


def default_memory_dir(fully_qualified_name: str) -> Path:
    """$ROS_HOME/rns_ros/<namespace>/<node name> (ROS_HOME defaults to ~/.ros), e.g.
    ~/.ros/rns_ros/rns for /rns and ~/.ros/rns_ros/robot1/rns for /robot1/rns: where the memory is
    kept when the memory_dir parameter is ''. One directory per node, namespaces included."""
    parts = [p for p in fully_qualified_name.split("/") if p]
    return Path(os.environ.get("ROS_HOME") or Path.home() / ".ros").joinpath("rns_ros", *parts)


def describe_report(report) -> str:
    """One line naming what a LoadReport set aside, dropped or could not restore."""
    parts = list(report.messages)
    parts += [f"set aside {s.path} -> {s.moved_to} ({s.reason})" for s in report.set_aside]
    if report.dropped_exemplars:
        parts.append(f"dropped exemplars {report.dropped_exemplars}")
    if report.exemplars_without_raw:
        parts.append(f"exemplars without raw image {report.exemplars_without_raw}")
    if report.classes_without_text:
        parts.append(f"classes without text {report.classes_without_text}")
    return "; ".join(parts) or "ok"


def _refusal(exc: Exception, directory: Path) -> ValueError:
    """What ~/save_support answers when a copy cannot be written to `directory`."""
    if isinstance(exc, MemoryDirBusy):  # another node's memory_dir
        return ValueError(f"cannot save to {directory}: it is in use by {describe_holder(exc.holder)}; "
                          "choose another directory")
    return ValueError(f"cannot save to {directory}: {getattr(exc, 'strerror', None) or exc}")


class PendingSave:
    """A copy of the memory waiting to be written to memory_dir: `write()` writes it (once) and
    returns a warning or None. Call it after letting go of the engine lock."""

    def __init__(self, store: "MemoryStore | None" = None, snapshot=None, generation: int = 0):
        self._store, self._snapshot, self._generation = store, snapshot, generation

    def write(self) -> str | None:
        store, self._store = self._store, None
        return None if store is None else store._autosave(self._snapshot, self._generation)


class MemoryStore:
    """The autosave directory of one node (None = changes are not saved)."""

    def __init__(self, directory: str | Path | None, log_error: Callable[[str], None] = lambda s: None):
        self.directory = Path(directory).expanduser() if directory else None
        self.log_error = log_error
        self.last_save_error: str | None = None
        self.load_problems: list[str] = []
        self._write_lock = threading.Lock()  # one write at a time
        self._started = 0  # generation of the newest copy taken (under the engine lock)
        self._written = 0  # generation of the copy in memory_dir

    def start_save(self, memory) -> PendingSave:
        """Copy `memory` for memory_dir (the caller holds the engine lock); write it with `.write()`."""
        if self.directory is None:
            return PendingSave()
        return PendingSave(self, *self._copy(memory))

    def start_copy(self, memory, directory: Path) -> Callable[[], None]:
        """Copy `memory` for `directory` (~/save_support; the caller holds the engine lock); returns
        the write, to call after letting go of the lock, which raises ValueError naming the path and
        the reason. Written in turn with the autosaves: into memory_dir itself it is one of them
        (never over a newer one, never beside one under way: both would collect the other's files)."""
        snapshot, generation = self._copy(memory)

        def write() -> None:
            try:
                self._write_in_turn(snapshot, generation, Path(directory))
            except (OSError, MemoryDirBusy) as exc:
                raise _refusal(exc, directory) from exc
        return write

    def wait_for_writes(self) -> None:
        """Return once no write is under way (before the node lets go of the directory's lock)."""
        with self._write_lock:
            pass

    def _copy(self, memory) -> tuple[object, int]:
        from rns_ros.core.memory.persistence import snapshot_for_save

        self._started += 1
        return snapshot_for_save(memory), self._started

    def _write_in_turn(self, snapshot, generation: int, directory: Path) -> None:
        """Write `snapshot` to `directory`, one write at a time; into memory_dir only if no newer
        copy is there already (it holds this one's changes too)."""
        from rns_ros.core.memory.persistence import write_snapshot

        with self._write_lock:
            own = self.directory is not None and directory.resolve() == self.directory.resolve()
            if own and generation <= self._written:
                return
            write_snapshot(snapshot, directory)
            if own:
                self._written = generation

    def _autosave(self, snapshot, generation: int) -> str | None:
        if self.directory is None:  # autosave was switched off meanwhile
            return None
        try:
            self._write_in_turn(snapshot, generation, self.directory)
            self.last_save_error = None
            return None
        except Exception as exc:  # noqa: BLE001 - the change stands; the failure is reported loudly
            self.last_save_error = f"could not save the memory to {self.directory}: {exc}"
            self.log_error(self.last_save_error)
            return self.last_save_error

    def load(self, backbone, device):
        """The stored memory, or None when there is none or it cannot be used (see `load_problems`)."""
        if self.directory is None:
            return None
        if not (self.directory / "memory.json").exists() and not (self.directory / "memory.prev.json").exists():
            return None
        from rns_ros.core.memory.persistence import CorruptFileError, load_memory

        try:
            memory, report = load_memory(self.directory, backbone=backbone, device=device)
        except CorruptFileError as exc:  # the bad manifest was set aside: start empty
            self.load_problems = [f"memory in {self.directory} unreadable, set aside, starting empty: {exc}"]
            return None
        except ValueError as exc:  # e.g. a newer format: keep it, and do not overwrite it
            self.load_problems = [f"memory in {self.directory} not loaded, autosave disabled: {exc}"]
            self.directory = None
            return None
        if not report.ok:
            self.load_problems = [describe_report(report)]
        return memory

    def diagnostics(self) -> dict[str, object]:
        out: dict[str, object] = {"memory_dir": str(self.directory) if self.directory else "(not saved)"}
        if self.last_save_error:
            out["memory_save_error"] = self.last_save_error
        if self.load_problems:
            out["memory_load_problems"] = " | ".join(self.load_problems)
        return out
