"""Merge one support memory into another: what another robot (or an earlier session) was taught,
added to what this one knows, without renumbering anything this one already has.

The policy:
- A class of the source whose name the target already has (in any spelling: names.py) *is* that
  class: its exemplars join it, the target's text feature and prompt stay. Nameless source classes, and names the target
  lacks, become new target classes (new ids; their text feature and prompt come along).
- Every source exemplar becomes a new target exemplar (new id) with its features unchanged, its
  origin (the robot that taught it) kept, and its raw label map renumbered to the target's class
  ids, so it can be re-encoded later.
- Ids already in the target never change; source ids are mapped (returned).

Both memories must hold features of the same backbone (`persistence.load_memory(...,
backbone=...)` re-encodes a saved memory for the running backbone first). Everything is checked
before the target changes; the caller serialises frames against the merge (the node holds its
engine lock).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rns_ros.core.memory.exemplars import Exemplar
from rns_ros.core.memory.names import name_key
from rns_ros.core.memory.support import SupportMemory


@dataclass(frozen=True)
class MergeResult:
    class_ids: dict[int, int]  # source class id -> target class id
    new_class_ids: list[int]  # target classes the merge created
    exemplar_ids: dict[int, int]  # source exemplar id -> new target exemplar id


def merge_memory(target: SupportMemory, source: SupportMemory) -> MergeResult:
    """Add `source`'s classes and exemplars to `target` (see the module docstring). Raises
    ValueError, with `target` unchanged, when the two cannot be merged."""
    if source.dim != target.dim:
        raise ValueError(f"cannot merge a memory of {source.dim}-d features into one of {target.dim}-d features")
    if source.backbone_identity != target.backbone_identity:
        raise ValueError(f"cannot merge features of backbone {source.backbone_identity!r} into a memory of "
                         f"{target.backbone_identity!r}; load the source with the running backbone first "
                         "(load_memory re-encodes it)")
    existing = {name_key(record.name): record.id for record in target.classes if record.name is not None}
    joined = {record.id: existing[name_key(record.name)] for record in source.classes
              if record.name is not None and name_key(record.name) in existing}
    created = classes_to_create(target, source)
    # the exemplars as they will be inserted, read and checked before anything changes
    source_class_ids = {record.id for record in source.classes}
    planned = []
    for eid in source.exemplar_ids:
        feats, class_ids = source.exemplar_features(eid)
        raw = source.exemplar(eid)
        stray = set() if raw is None else set(np.unique(raw.labels).tolist()) - {0} - source_class_ids
        if stray:
            raise ValueError(f"source exemplar {eid} annotates class ids {sorted(stray)} that the source lacks")
        planned.append((eid, feats, class_ids, raw, source.exemplar_origin(eid)))

    mapping = dict(joined)
    new_class_ids: list[int] = []
    exemplar_ids: dict[int, int] = {}
    try:
        for record in created:
            cid = target.add_class(record.name, source.text_feature(record.id), prompt=record.prompt)
            mapping[record.id] = cid
            new_class_ids.append(cid)
        source_ids = np.array(sorted(mapping), dtype=np.int64)
        target_ids = np.array([mapping[c] for c in source_ids], dtype=np.int64)
        for eid, feats, class_ids, raw, origin in planned:
            exemplar = None if raw is None else _renumbered(raw, source_ids, target_ids)
            exemplar_ids[eid] = target.add_image_features(feats, [mapping[c] for c in class_ids], exemplar=exemplar,
                                                          origin=origin)
    except Exception:
        for new_eid in exemplar_ids.values():  # undo (only an internal error can get here)
            target.remove_exemplar(new_eid)
        for cid in new_class_ids:
            target.remove_class(cid)
        raise
    return MergeResult(mapping, new_class_ids, exemplar_ids)


def classes_to_create(target: SupportMemory, source: SupportMemory) -> list:
    """The source's class records that `merge_memory` adds to `target` as new classes, in the order
    it adds them (they get target ids next_class_id, next_class_id + 1, ...): nameless ones and
    names the target lacks."""
    names = {name_key(record.name) for record in target.classes if record.name is not None}
    return [record for record in source.classes if record.name is None or name_key(record.name) not in names]


def _renumbered(exemplar: Exemplar, source_ids: np.ndarray, target_ids: np.ndarray) -> Exemplar:
    """The exemplar with each class id source_ids[i] (ascending) of its label map replaced by
    target_ids[i] (0 stays 0)."""
    labels = exemplar.labels
    annotated = labels != 0
    renumbered = np.zeros_like(labels)
    renumbered[annotated] = target_ids[np.searchsorted(source_ids, labels[annotated])]
    return Exemplar(exemplar.image, renumbered)
