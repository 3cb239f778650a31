"""rosbag2 recordings in and out for `rns-bag`, through `rosbags` (pure Python; MCAP and sqlite3).

rosbags does the storage (files, indexes, metadata.yaml); the messages themselves are
(de)serialised by rclpy into the same message classes the node uses, so rns-bag and the node
share every conversion. Output contract: the bag is written under a temporary name next to its
destination and renamed into place only after rosbags closed it (metadata.yaml written last), so
a path given to `--out` either does not exist or holds a complete, readable bag; an aborted run
leaves nothing behind.
"""
from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer

from rns_ros.ros.bags.salvage import SalvagedMcap

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")  # raw or compressed frames
_INFINITE = QosTime(9223372036, 854775807)  # RMW_DURATION_INFINITE as rosbag2 (Jazzy) records it
LATCHED_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, _INFINITE,
                  _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False)


class BagError(ValueError):
    """A recording that cannot be read or written; the message names the fix."""


def message_class(msgtype: str):
    """The rclpy class of a ROS 2 type name such as 'sensor_msgs/msg/Image'."""
    package, kind, name = (msgtype.split("/") + ["", ""])[:3]
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise BagError(f"message type {msgtype!r} is not available in this Python environment") from exc


def _msg_dirs(package: str) -> list[Path]:
    """Where a package's .msg files may be: installed share folders, then this source tree (the
    rns_ros messages, and interfaces/ for the vision_msgs stand-in)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    dirs = [Path(p) / "share" / package / "msg" for p in prefixes]
    root = Path(__file__).resolve().parents[3]
    return dirs + [root / "msg" if package == "rns_ros" else root / "interfaces" / package / "msg"]


def typestore():
    """rosbags' Jazzy type store plus this package's messages and vision_msgs' LabelInfo (for their
    definitions and hashes)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for package, probe in (("rns_ros", "ClassMap.msg"), ("vision_msgs", "LabelInfo.msg")):
        folder = next((d for d in _msg_dirs(package) if (d / probe).is_file()), None)
        if folder is None:
            raise BagError(f"cannot find {package}/msg/{probe} (looked in the AMENT_PREFIX_PATH share "
                           "folders and the source tree): install the package (scripts/setup.sh or colcon build)")
        for path in sorted(folder.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    store.register(types)
    return store


def open_reader(path: str | Path) -> Reader:
    """Open a rosbag2 folder (or one .mcap / .db3 file of it); BagError says what is wrong. A .mcap
    file that was cut off is read as far as it goes (salvage.SalvagedMcap; its `note` says how far)."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"input bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        files = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        raise BagError(f"input bag {path} has no metadata.yaml (the recording was not closed cleanly); "
                       + (f"pass its storage file instead ({path / files[0]}) or run `ros2 bag reindex {path}`"
                          if files else "it holds no .mcap or .db3 file either"))
    reader = Reader(path)
    try:
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        mcap = path if path.suffix == ".mcap" else None
        if mcap is not None:  # cut off (no summary, no end magic): read it record by record
            salvaged = SalvagedMcap(mcap)
            if salvaged.message_count:
                return salvaged
        raise BagError(f"cannot read input bag {path}: {exc} (a damaged or unfinished recording? "
                       + ("no message could be read from it either)" if mcap is not None else
                          "sqlite3's `.recover` repairs db3 files)")) from exc
    return reader


def storage_of(path: str | Path) -> str:
    """'mcap' or 'sqlite3': the storage of a bag folder or file."""
    path = Path(path)
    names = [p.name for p in path.iterdir()] if path.is_dir() else [path.name]
    return "mcap" if any(".mcap" in n for n in names) else "sqlite3"


class BagWriter:
    """A new bag at `path`, written under a temporary name and renamed into place by `close()`."""

    def __init__(self, path: str | Path, storage: str, store):
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} exists already; choose another --out or remove it")
        if storage not in STORAGES:
            raise BagError(f"--storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_root = self.path.parent / f".{self.path.name}.rns-bag-{os.getpid()}"
        shutil.rmtree(self._tmp_root, ignore_errors=True)
        self._tmp_root.mkdir()
        self._store = store
        self._writer = Writer(self._tmp_root / self.path.name, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()

    def add_topic(self, topic: str, msgtype: str, *, msgdef: str | None = None, digest: str | None = None,
                  qos=()):
        """Declare a topic and return its handle for `write`; without a definition and hash they
        come from the type store."""
        if msgdef and digest:
            return self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=digest,
                                               offered_qos_profiles=list(qos))
        return self._writer.add_connection(topic, msgtype, typestore=self._store, offered_qos_profiles=list(qos))

    def write(self, handle, time_ns: int, data: bytes) -> None:
        self._writer.write(handle, int(time_ns), data)

    def close(self, custom: dict[str, str]) -> None:
        """Write the index and metadata.yaml, then move the bag to its destination."""
        for key, value in custom.items():
            self._writer.set_custom_data(key, str(value))
        self._writer.close()
        os.replace(self._tmp_root / self.path.name, self.path)
        shutil.rmtree(self._tmp_root, ignore_errors=True)

    def abort(self) -> None:
        """Give up: nothing appears at the destination."""
        try:
            self._writer.abort()
        finally:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
