"""Where the engine keeps what it builds once per machine: the adapter's compiled kernel, the ONNX
exports and compiled engines of the runtimes. `$RNS_ROS_CACHE_DIR`, default
`$XDG_CACHE_HOME/rns_ros` (~/.cache/rns_ros). Everything in it can be deleted; it is rebuilt on use.

    with build_into(cache_dir() / "onnx" / name, marker="encoder.onnx") as scratch:
        ...write the files into scratch...       # renamed to the folder when the block ends
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def cache_dir() -> Path:
    if os.environ.get("RNS_ROS_CACHE_DIR"):
        return Path(os.environ["RNS_ROS_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "rns_ros"


@contextlib.contextmanager
def build_into(folder: Path, *, marker: str) -> Iterator[Path]:
    """A scratch folder beside `folder` to build in; renamed to `folder` when the block ends without
    an error (atomic: a reader never sees half of it; where another process finished first, which its
    `marker` file shows, that one is kept), removed in any case."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        yield scratch
        try:
            scratch.rename(folder)
        except OSError:
            if not (folder / marker).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of `names` (None where one is missing), for cache keys and records."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found
