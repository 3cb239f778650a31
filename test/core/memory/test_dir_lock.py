"""One writer per memory directory: the lock refuses a second writer (naming the holder), in another
process or this one, and never outlives its holder."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _support_fakes import FakeBackbone
from rns_ros.core.memory.dir_lock import LOCK_FILE, MemoryDirBusy, MemoryDirLock, held_here, read_holder
from rns_ros.core.memory.persistence import load_memory, save_memory
from rns_ros.core.memory.support import SupportMemory

ROOT = Path(__file__).resolve().parents[3]
HOLDER = textwrap.dedent("""
    import sys
    from rns_ros.core.memory.dir_lock import MemoryDirLock
    lock = MemoryDirLock(sys.argv[1], owner="test holder").acquire()
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes stdin (or kills us)
""")


def memory_with(name: str) -> SupportMemory:
    backbone = FakeBackbone()
    memory = SupportMemory(backbone.dim, backbone_identity=backbone.identity)
    memory.add_class(name, backbone.encode_text([name])[0])
    return memory


def hold_in_another_process(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_the_holder_named_and_writes_nothing(tmp_path):
    directory = tmp_path / "mem"
    proc = hold_in_another_process(directory)
    try:
        with pytest.raises(MemoryDirBusy) as err:
            MemoryDirLock(directory, fix="use another directory").acquire()
        message = str(err.value)
        assert f"pid {proc.pid} on host {socket.gethostname()} (test holder)" in message
        assert message.endswith("use another directory") and str(directory) in message
        with pytest.raises(MemoryDirBusy, match="pass save_memory another directory"):
            save_memory(memory_with("mug"), directory)
        assert not (directory / "memory.json").exists()  # the refused save wrote nothing
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    save_memory(memory_with("mug"), directory)  # the holder is gone: the directory is free again
    memory, _ = load_memory(directory, backbone=FakeBackbone())
    assert [c.name for c in memory.classes] == ["mug"]


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    directory = tmp_path / "mem"
    proc = hold_in_another_process(directory)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert read_holder(directory)["pid"] == proc.pid  # the record stays ...
    with MemoryDirLock(directory, owner="me") as lock:  # ... but the lock went with the process
        assert lock.held and read_holder(directory) == {"pid": os.getpid(), "host": socket.gethostname(),
                                                        "owner": "me"}


def test_two_holders_in_one_process_exclude_each_other(tmp_path):
    first = MemoryDirLock(tmp_path / "mem", owner="first").acquire()
    try:
        assert held_here(tmp_path / "mem") and (tmp_path / "mem" / LOCK_FILE).is_file()
        with pytest.raises(MemoryDirBusy, match=r"\(first\)"):
            MemoryDirLock(tmp_path / "mem", owner="second").acquire()
        save_memory(memory_with("cup"), tmp_path / "mem")  # this process's own saves go through
    finally:
        first.release()
    assert not held_here(tmp_path / "mem")
    with MemoryDirLock(tmp_path / "mem", owner="second"):
        pass


def test_an_unusable_directory_is_an_os_error_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError) as err:
        MemoryDirLock(blocker / "mem").acquire()
    assert str(blocker) in str(err.value)
    assert not held_here(blocker / "mem")
