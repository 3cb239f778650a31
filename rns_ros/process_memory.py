"""How a long-running process of ours gets freed memory back to the system: glibc's mmap threshold.

glibc's malloc serves a request of at least M_MMAP_THRESHOLD bytes with a mapping of its own,
which free() hands back to the kernel at once; smaller requests are carved out of heaps (arenas),
whose freed space stays in the process for later requests. By default the threshold is dynamic:
whenever a mapped block is freed, the threshold rises to that block's size (up to 32 MiB on
64-bit). After the first multi-megabyte temporaries of a text encoding (a taught class name: every
prompt template through the text transformer) have come and gone, the later ones of that size come
from the heap, and the holes they leave between longer-lived objects are kept. Issue 25: a node
taught and corrected 1,000 times kept hundreds of MB that way; `malloc_trim(0)` gave all of it
back, so it was retained, not leaked (scripts/bench_teaching_memory.py, docs/teaching.md).

`return_large_blocks()` fixes the threshold at MMAP_THRESHOLD_BYTES, which also switches the
dynamic adjustment off (mallopt(3)): blocks of 1 MiB and more are mapped, and returned when freed.
The frame time did not change measurably (the same benchmark, interleaved). It is process-wide, so
entry points of long-running processes call it (the node does, when it is built), never an import.
Elsewhere than glibc it does nothing and says so (returns False).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

MMAP_THRESHOLD_BYTES = 1 << 20  # blocks of this size and more: their own mapping, returned on free
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


@functools.lru_cache(maxsize=1)
def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def return_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes for this process (see the module docstring).
    True when it was set; False where the C library is not glibc or refused the value."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def give_back_free_memory() -> bool:
    """glibc's malloc_trim(0): return the free pages of every heap to the system now (what a fixed
    threshold makes unnecessary; benchmarks use it to tell retained memory from leaked memory)."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
