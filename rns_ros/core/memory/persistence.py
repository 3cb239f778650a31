"""Atomic, versioned save/load of a `SupportMemory` directory.

Layout of a memory directory::

    memory.json        the manifest (the commit point): format version, backbone identity, dim,
                       classes (ids, names, prompts, which text row), next ids, exemplars (ids,
                       class ids, origin robot, and the data files holding their features, image
                       and label map), and the fleet sync's ledger (removals, class stamps)
    memory.prev.json   the manifest of the save before, kept with its data files as a fallback
    data/<sha>.npy     feature arrays (exemplar features, text features)
    data/<sha>.png     raw exemplar images (RGB) and label maps (16-bit; .npy past id 65535)

Data files are named by a hash of their content, so each is written once and never modified; the
manifest lists every file with its SHA-256, checked on load. Every file is written to a temporary
name, flushed, fsynced, renamed over its target with `os.replace`, and the directory is fsynced
(once for all the data files of a save).
The manifest is written last, so an interrupted save leaves the previous state loadable. Files that
fail to read or verify are renamed aside (`<name>.corrupt-<ns>`), never overwritten or deleted, and
listed in the `LoadReport`; loading returns what it can still read. A single writer per directory:
`save_memory` holds the directory's lock (dir_lock.py) while it writes, unless this process holds
it already (a node holds its memory_dir's lock from configure to cleanup); another writer's lock
makes it raise MemoryDirBusy, naming the holder. A save is two steps, `snapshot_for_save` (a copy,
quick: take it under the lock guarding the memory) and `write_snapshot` (the disk, slow: after letting
go of that lock); `save_memory` does both.

Format versions: 1 (the first); 2 adds each exemplar's "origin" (the robot that taught it) and the
"ledger" (SupportMemory.ledger: what the fleet sync must remember with the memory, e.g. removed
exemplars). Version 1 directories load as memories taught here with an empty ledger.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rns_ros.core.memory.dir_lock import MemoryDirLock, held_here
from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar
from rns_ros.core.memory.support import SupportMemory

FORMAT_NAME = "rns_ros.support_memory"
FORMAT_VERSION = 2
MANIFEST = "memory.json"
PREVIOUS_MANIFEST = "memory.prev.json"
DATA_DIR = "data"
_DATA_NAME = re.compile(r"^[0-9a-f]{32}\.(npy|png)$")


class CorruptFileError(ValueError):
    """A file of the memory directory is missing, unreadable or fails its checksum."""


@dataclass(frozen=True)
class SetAsideFile:
    path: str  # where the file was
    moved_to: str | None  # where it is now (None if it was missing)
    reason: str


@dataclass
class LoadReport:
    """What `load_memory` found and did."""

    directory: str
    format_version: int | None = None
    stored_identity: str | None = None  # backbone identity recorded in the directory
    identity: str | None = None  # identity of the returned memory
    reencoded: bool = False  # True when the backbone identity changed and features were recomputed
    used_previous_save: bool = False  # the manifest was unreadable; memory.prev.json was loaded
    set_aside: list[SetAsideFile] = field(default_factory=list)
    reencoded_exemplars: list[int] = field(default_factory=list)
    reencoded_text: list[int] = field(default_factory=list)  # class ids
    dropped_exemplars: list[int] = field(default_factory=list)  # could be neither read nor re-encoded
    exemplars_without_raw: list[int] = field(default_factory=list)  # features kept, raw image lost
    classes_without_text: list[int] = field(default_factory=list)  # text lost and not re-encodable
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when everything stored was read back intact."""
        return not (self.set_aside or self.dropped_exemplars or self.exemplars_without_raw
                    or self.classes_without_text or self.used_previous_save)


# ---------------------------------------------------------------------- atomic file writing
def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `path` so that `path` holds either its old content or all of `data`. With
    sync_dir=False the caller fsyncs the directory itself (once for many files) before relying on
    the rename having reached the disk."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if sync_dir:
        _fsync_dir(path.parent)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _set_aside(path: Path, reason: str, report: LoadReport) -> None:
    if not path.exists():
        report.set_aside.append(SetAsideFile(str(path), None, reason))
        return
    target = path.with_name(f"{path.name}.corrupt-{time.time_ns()}")
    os.replace(path, target)
    report.set_aside.append(SetAsideFile(str(path), str(target), reason))
    report.messages.append(f"{path.name}: {reason}; moved aside to {target.name}")


# ---------------------------------------------------------------------- encoding of data files
def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _labels_blob(labels: np.ndarray) -> tuple[bytes, str]:
    if int(labels.max()) < 65536:
        return _png_bytes(labels.astype(np.uint16)), "png"
    return _npy_bytes(labels.astype(np.int64)), "npy"


def _decode(data: bytes, ext: str) -> np.ndarray:
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as img:
        return np.array(img)


class _BlobWriter:
    """Writes content-named data files once; returns their manifest entries. Each file is fsynced
    as it is written, the folder once, in `commit` (one folder fsync per save instead of one per
    file: a catch-up of 1,000 exemplars writes 1,000 files), before the manifest names them."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.names: set[str] = set()
        self.renamed = False

    def commit(self) -> None:
        if self.renamed:
            _fsync_dir(self.data_dir)

    def put(self, data: bytes, ext: str) -> dict:
        sha = _sha256(data)
        name = f"{sha[:32]}.{ext}"
        path = self.data_dir / name
        if name not in self.names:
            if path.exists():
                # Content-named: same size means same content (full checks happen on load).
                # A truncated copy is kept aside and a good one written.
                if path.stat().st_size != len(data):
                    os.replace(path, path.with_name(f"{name}.corrupt-{time.time_ns()}"))
                    atomic_write_bytes(path, data, sync_dir=False)
                    self.renamed = True
            else:
                atomic_write_bytes(path, data, sync_dir=False)
                self.renamed = True
            self.names.add(name)
        return {"file": f"{DATA_DIR}/{name}", "sha256": sha}


# ---------------------------------------------------------------------- save
@dataclass(frozen=True)
class SavedExemplar:
    id: int
    class_ids: list[int]
    origin: str | None
    features: np.ndarray  # (N, dim) float32, a copy
    raw: Exemplar | None  # image + label map (never modified once stored)


@dataclass(frozen=True)
class MemorySnapshot:
    """Everything a save writes, copied out of a memory: reading it is quick (no encoding, no disk),
    so a caller can take it under the lock that guards the memory and write it after letting go
    (`write_snapshot`), while the memory goes on changing."""

    backbone_identity: str
    dim: int
    next_class_id: int
    next_exemplar_id: int
    classes: list[dict]  # id, name, prompt, text_row
    text_rows: list[np.ndarray]
    exemplars: list[SavedExemplar]
    ledger: dict


def snapshot_for_save(memory: SupportMemory) -> MemorySnapshot:
    """Copy what `save_memory` writes out of `memory` (the caller holds whatever guards it)."""
    if not isinstance(memory, SupportMemory):
        raise ValueError(f"save_memory needs a SupportMemory, got {type(memory).__name__}")
    classes, text_rows = [], []
    for record in memory.classes:
        text = memory.text_feature(record.id)
        row = None
        if text is not None:
            row = len(text_rows)
            text_rows.append(text.cpu().numpy().astype(np.float32, copy=True))
        classes.append({"id": record.id, "name": record.name, "prompt": record.prompt, "text_row": row})
    exemplars = []
    for eid in memory.exemplar_ids:
        feats, class_ids = memory.exemplar_features(eid)
        exemplars.append(SavedExemplar(eid, list(class_ids), memory.exemplar_origin(eid),
                                       feats.cpu().numpy().astype(np.float32, copy=True), memory.exemplar(eid)))
    return MemorySnapshot(memory.backbone_identity, memory.dim, memory.next_class_id, memory.next_exemplar_id,
                          classes, text_rows, exemplars, copy.deepcopy(memory.ledger))


def save_memory(memory: SupportMemory, directory: str | os.PathLike) -> Path:
    """Save `memory` to `directory` (created if needed) atomically; returns the manifest path.

    Raises MemoryDirBusy when another writer (a running node, another save) holds the directory,
    OSError when it cannot be created or written."""
    return write_snapshot(snapshot_for_save(memory), directory)


def write_snapshot(snapshot: MemorySnapshot, directory: str | os.PathLike) -> Path:
    """Write a `snapshot_for_save` to `directory` atomically, as `save_memory` does."""
    directory = Path(directory)
    if held_here(directory):
        return _save(snapshot, directory)
    with MemoryDirLock(directory, owner=f"save_memory in {Path(sys.argv[0]).name or 'python'}",
                       fix="pass save_memory another directory, or stop that writer first"):
        return _save(snapshot, directory)


def _save(snapshot: MemorySnapshot, directory: Path) -> Path:
    data_dir = directory / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    blobs = _BlobWriter(data_dir)

    text_entry = None
    if snapshot.text_rows:
        text_entry = blobs.put(_npy_bytes(np.stack(snapshot.text_rows)), "npy")

    exemplars = []
    for saved in snapshot.exemplars:
        entry = {"id": saved.id, "class_ids": saved.class_ids, "origin": saved.origin,
                 "features": blobs.put(_npy_bytes(saved.features), "npy"), "image": None, "labels": None}
        if saved.raw is not None:
            entry["image"] = blobs.put(_png_bytes(np.asarray(saved.raw.image)), "png")
            entry["labels"] = blobs.put(*_labels_blob(np.asarray(saved.raw.labels)))
        exemplars.append(entry)
    blobs.commit()

    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "backbone_identity": snapshot.backbone_identity, "dim": snapshot.dim,
        "next_class_id": snapshot.next_class_id, "next_exemplar_id": snapshot.next_exemplar_id,
        "text": text_entry, "classes": snapshot.classes, "exemplars": exemplars, "ledger": snapshot.ledger,
    }
    manifest_path = directory / MANIFEST
    if manifest_path.exists():
        old = manifest_path.read_bytes()
        try:
            json.loads(old)
            atomic_write_bytes(directory / PREVIOUS_MANIFEST, old)
        except ValueError:
            pass  # an unreadable manifest is not worth keeping as the fallback
    atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
    _collect_garbage(directory)
    return manifest_path


def _referenced(manifest_path: Path) -> set[str]:
    try:
        manifest = json.loads(manifest_path.read_bytes())
        entries = [manifest.get("text")]
        for ex in manifest.get("exemplars", []):
            entries += [ex.get("features"), ex.get("image"), ex.get("labels")]
        return {Path(e["file"]).name for e in entries if e}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def _collect_garbage(directory: Path) -> None:
    """Delete data files referenced by neither manifest, and leftovers of interrupted writes.
    Set-aside (`.corrupt-`) files are never touched."""
    keep = _referenced(directory / MANIFEST) | _referenced(directory / PREVIOUS_MANIFEST)
    for folder in (directory, directory / DATA_DIR):
        for path in folder.iterdir():
            name = path.name
            stale_tmp = name.startswith(".") and ".tmp-" in name
            unreferenced = folder.name == DATA_DIR and _DATA_NAME.match(name) and name not in keep
            if stale_tmp or unreferenced:
                try:
                    path.unlink()
                except OSError:
                    pass


# ---------------------------------------------------------------------- load
def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CorruptFileError("not a support-memory manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CorruptFileError(f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}, newer than this rns_ros "
                         f"(reads up to {FORMAT_VERSION}); upgrade rns_ros to load it")
    for key, kind in (("dim", int), ("next_class_id", int), ("next_exemplar_id", int),
                      ("classes", list), ("exemplars", list)):
        if not isinstance(manifest.get(key), kind):
            raise CorruptFileError(f"manifest field {key!r} is missing or malformed")
    return manifest


def _read_blob(directory: Path, entry: dict, report: LoadReport, seen_bad: dict) -> np.ndarray:
    """Read and verify one data file; a bad one is set aside (once) and CorruptFileError raised."""
    try:
        path = directory / entry["file"]
        sha = entry["sha256"]
    except (TypeError, KeyError) as exc:
        raise CorruptFileError("malformed file entry in the manifest") from exc
    if str(path) in seen_bad:
        raise CorruptFileError(seen_bad[str(path)])
    try:
        data = path.read_bytes()
        if _sha256(data) != sha:
            raise CorruptFileError("checksum mismatch")
        return _decode(data, path.suffix.lstrip("."))
    except (OSError, ValueError, CorruptFileError) as exc:
        reason = "missing" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc})"
        seen_bad[str(path)] = reason
        _set_aside(path, reason, report)
        raise CorruptFileError(reason) from exc


def load_memory(directory: str | os.PathLike, *, backbone=None, device: str | torch.device = "cpu",
                expected_identity: str | None = None,
                index_backend: str = "auto") -> tuple[SupportMemory, LoadReport]:
    """Load a memory saved by `save_memory`; returns (memory, LoadReport).

    backbone: when given and its `identity` differs from the stored one, the raw exemplars are
    re-encoded with `encode_exemplar` and the text features with `backbone.encode_text(prompt or
    name)`; it is also used to recompute features whose file is damaged. expected_identity: with no
    backbone, the identity the caller needs; a different stored identity is a ValueError. Class and
    exemplar ids are kept.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no memory directory at {directory}")
    report = LoadReport(directory=str(directory))
    manifest = None
    for name in (MANIFEST, PREVIOUS_MANIFEST):
        path = directory / name
        if not path.exists():
            continue
        try:
            manifest = _read_manifest(path)
            report.used_previous_save = name == PREVIOUS_MANIFEST
            break
        except CorruptFileError as exc:
            _set_aside(path, str(exc), report)
    if manifest is None:
        if not report.set_aside:
            raise FileNotFoundError(f"no {MANIFEST} in {directory}; save a memory there first")
        raise CorruptFileError(f"no readable manifest in {directory}: " +
                               "; ".join(f"{Path(s.path).name}: {s.reason}" for s in report.set_aside))
    if report.used_previous_save:
        report.messages.append(f"{MANIFEST} unreadable: loaded the previous save")

    stored = manifest.get("backbone_identity")
    report.format_version = manifest["format_version"]
    report.stored_identity = stored
    if backbone is None and expected_identity is not None and expected_identity != stored:
        raise ValueError(f"the memory in {directory} was made by backbone {stored!r}, not "
                         f"{expected_identity!r}; pass backbone=... to re-encode its exemplars")
    reencode = backbone is not None and backbone.identity != stored
    report.reencoded = reencode
    dim = int(backbone.dim) if reencode else int(manifest["dim"])
    identity = backbone.identity if reencode else stored
    report.identity = identity
    memory = SupportMemory(dim, device=device, backbone_identity=identity, index_backend=index_backend)
    bad: dict[str, str] = {}
    _load_classes(memory, manifest, directory, backbone, reencode, report, bad)
    _load_exemplars(memory, manifest, directory, backbone, reencode, report, bad)
    memory._set_next_ids(manifest["next_class_id"], manifest["next_exemplar_id"])
    ledger = manifest.get("ledger")
    memory.ledger = ledger if isinstance(ledger, dict) else {}
    return memory, report


def _load_classes(memory, manifest, directory, backbone, reencode, report, bad) -> None:
    text = None
    if manifest.get("text") and not reencode:
        try:
            text = _read_blob(directory, manifest["text"], report, bad)
        except CorruptFileError:
            text = None
    want_text: dict[int, str] = {}  # classes to (re-)encode text for: id -> prompt
    rows: dict[int, np.ndarray | None] = {}
    for entry in manifest["classes"]:
        cid, row = int(entry["id"]), entry.get("text_row")
        feature = None
        if row is not None:
            if text is not None and 0 <= row < len(text) and text.shape[1] == memory.dim:
                feature = text[row]
            elif backbone is not None and (entry.get("prompt") or entry.get("name")):
                want_text[cid] = entry.get("prompt") or entry["name"]
            else:
                report.classes_without_text.append(cid)
        rows[cid] = feature
    encoded = {}
    if want_text:
        feats = backbone.encode_text(list(want_text.values()))
        encoded = dict(zip(want_text, torch.as_tensor(feats).detach().cpu().float()))
        report.reencoded_text = sorted(want_text)
    for entry in manifest["classes"]:
        cid = int(entry["id"])
        feature = rows[cid] if cid not in encoded else encoded[cid]
        memory._restore_class(cid, entry.get("name"), entry.get("prompt"),
                              None if feature is None else torch.as_tensor(feature))


def _load_exemplars(memory, manifest, directory, backbone, reencode, report, bad) -> None:
    known = set(memory.class_ids)
    for entry in manifest["exemplars"]:
        eid = int(entry["id"])
        raw = None
        if entry.get("image") and entry.get("labels"):
            try:
                image = _read_blob(directory, entry["image"], report, bad)
                labels = _read_blob(directory, entry["labels"], report, bad)
                raw = Exemplar(image=image, labels=labels.astype(np.int64))
                if not set(raw.class_ids()) <= known:
                    raw = None
                    report.messages.append(f"exemplar {eid}: label map names unknown classes; raw dropped")
            except (CorruptFileError, ValueError):
                raw = None
        feats = None
        if not reencode:
            try:
                feats = _read_blob(directory, entry["features"], report, bad)
                if feats.ndim != 2 or feats.shape != (len(entry["class_ids"]), memory.dim):
                    raise CorruptFileError(f"features have shape {feats.shape}")
                class_ids = [int(c) for c in entry["class_ids"]]
                if not set(class_ids) <= known:
                    raise CorruptFileError("features name unknown classes")
            except (CorruptFileError, KeyError, TypeError) as exc:
                report.messages.append(f"exemplar {eid}: features unusable ({exc})")
                feats = None
        if feats is None and raw is not None and backbone is not None:
            feats, class_ids = encode_exemplar(backbone, raw)
            report.reencoded_exemplars.append(eid)
            if not class_ids:
                feats = None
        if feats is None:
            report.dropped_exemplars.append(eid)
            continue
        if raw is None and (entry.get("image") or entry.get("labels")):
            report.exemplars_without_raw.append(eid)
        feats, class_ids = memory._check_features(torch.as_tensor(feats), class_ids)
        origin = entry.get("origin")
        memory._insert_exemplar(eid, feats, class_ids, raw, origin if isinstance(origin, str) and origin else None)
