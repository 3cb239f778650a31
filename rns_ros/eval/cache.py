"""On-disk cache of what is expensive and shared by every setting, B and seed of a run: the dense
features of each test image, the per-image class features of each support image, region
partitions and text features.

Entries live under <root>/<kind>/<sha1(identity)[:16]>/..., where `identity` is the backbone's
identity string (it names the weights *and* the preprocessing, see DenseBackbone). A changed
identity therefore reads and writes other files; each file also stores its full key, and a file
whose key does not match (or that cannot be read) is recomputed and overwritten. Writes are
atomic (temporary file + rename), so an interrupted run leaves no half-written entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rns_ros.core.backbones.base import DenseFeatures

FORMAT_VERSION = 1  # bump when the stored layout changes; old entries are then recomputed


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _safe(name: str) -> str:
    """A file-name-safe spelling of an image id (ids may contain '/')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "__"))


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureCache:
    """Get-or-compute store keyed by (identity, kind, namespace, image id).

    `root`: cache folder (shared between runs is fine). `identity`: backbone identity.
    `device`: where loaded tensors are put. `hits`/`misses` count lookups, for tests and logs.
    """

    def __init__(self, root: str | Path, identity: str, device: str | torch.device = "cpu") -> None:
        if not identity:
            raise ValueError("the cache needs a non-empty backbone identity")
        self.root = Path(root).expanduser()
        self.identity = identity
        self.device = torch.device(device)
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, namespace: str, image_id: str, extra_identity: str = "") -> Path:
        ident = _digest(self.identity + ("|" + extra_identity if extra_identity else ""))
        return self.root / kind / ident / _safe(namespace) / f"{_safe(image_id)}.pt"

    def exists(self, kind: str, namespace: str, image_id: str, extra_identity: str = "") -> bool:
        """Whether an entry file is on disk (its key is checked only when it is read)."""
        return self.path(kind, namespace, image_id, extra_identity).exists()

    def _key(self, kind: str, namespace: str, image_id: str, extra_identity: str) -> dict:
        return {"version": FORMAT_VERSION, "identity": self.identity, "extra": extra_identity,
                "kind": kind, "namespace": namespace, "image_id": image_id}

    def get_or_compute(self, kind: str, namespace: str, image_id: str,
                       compute: Callable[[], dict[str, Any]], extra_identity: str = "") -> dict[str, Any]:
        """The stored payload (a dict of tensors / plain values), computing and storing it when
        missing or stale. Tensors come back on `self.device`."""
        path = self.path(kind, namespace, image_id, extra_identity)
        key = self._key(kind, namespace, image_id, extra_identity)
        if path.exists():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                if stored.get("key") == key:
                    self.hits += 1
                    return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                            for k, v in stored["payload"].items()}
            except Exception:  # unreadable / truncated file: recompute below
                pass
        self.misses += 1
        payload = compute()
        to_store = {k: v.detach().to("cpu") if isinstance(v, torch.Tensor) else v
                    for k, v in payload.items()}
        atomic_write_bytes(path, lambda f: torch.save({"key": key, "payload": to_store}, f))
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in payload.items()}

    # -- typed helpers --------------------------------------------------------------------------
    def dense(self, namespace: str, image_id: str, compute: Callable[[], DenseFeatures]) -> DenseFeatures:
        """Dense test-image features (DenseFeatures) of `image_id`."""
        def payload() -> dict:
            dense = compute()
            return {"features": dense.features.to(torch.float32),
                    "image_size": list(dense.image_size), "resized_size": list(dense.resized_size),
                    "patch_size": int(dense.patch_size)}
        p = self.get_or_compute("dense", namespace, image_id, payload)
        return DenseFeatures(features=p["features"], image_size=tuple(p["image_size"]),
                             resized_size=tuple(p["resized_size"]), patch_size=int(p["patch_size"]))

    def support_features(self, namespace: str, image_id: str,
                         compute: Callable[[], tuple[torch.Tensor, list[int]]]) -> tuple[torch.Tensor, list[int]]:
        """Per-image class features of a support image: ((m, d), m dataset class indices)."""
        def payload() -> dict:
            feats, classes = compute()
            return {"features": feats.to(torch.float32), "classes": [int(c) for c in classes]}
        p = self.get_or_compute("support", namespace, image_id, payload)
        return p["features"], list(p["classes"])

    def partition(self, proposer_identity: str, namespace: str, image_id: str,
                  compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A region partition (H', W') int64 of the resized test image, keyed by the proposer too."""
        p = self.get_or_compute("regions", namespace, image_id,
                                lambda: {"partition": torch.from_numpy(np.asarray(compute(), dtype=np.int64))},
                                extra_identity=proposer_identity)
        return p["partition"].cpu().numpy()

    def text(self, names: list[str], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """(C, d) text features of `names` (keyed by the exact list)."""
        key = _digest(json.dumps(names))
        return self.get_or_compute("text", "text", key, lambda: {"features": compute()})["features"]


class LabelIndex:
    """Which classes each image of a split contains, stored as JSON next to the feature cache so
    support sampling does not re-read every label map on each run. Keyed by dataset, split and the
    resolved dataset root."""

    def __init__(self, root: str | Path, dataset) -> None:
        ident = _digest(f"{dataset.name}|{dataset.split}|{Path(dataset.root).resolve()}")
        self.path = Path(root).expanduser() / "labels" / f"{_safe(dataset.name)}-{dataset.split}-{ident}.json"
        self.dataset = dataset
        self._table: dict[str, list[int]] | None = None

    def _load(self) -> dict[str, list[int]]:
        if self._table is None:
            try:
                self._table = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._table = {}
        return self._table

    def presence(self, image_ids: list[str], progress: bool = False) -> list[list[int]]:
        table = self._load()
        missing = [i for i in image_ids if i not in table]
        if missing:
            from tqdm import tqdm
            for image_id in tqdm(missing, desc=f"{self.dataset.name}: scanning label maps",
                                 disable=not progress, leave=False):
                table[image_id] = self.dataset.classes_present(image_id)
            data = json.dumps(table).encode("utf-8")
            atomic_write_bytes(self.path, lambda f: f.write(data))
        return [table[i] for i in image_ids]
