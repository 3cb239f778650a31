"""The support memory: classes, their text features, and the visual support set V (RNS section 2).

Classes have stable integer ids >= 1, assigned in increasing order and never reused. Each exemplar
(one support image) contributes one per-image class feature v_c^i per class it annotates; the union
of those rows is the bank V, held on `device` and mirrored in a retrieval index that is updated on
every insert and removal. Every refused call raises before anything changes; every successful
change bumps `version`.

Features and text features are stored unit-norm; a row that is unit-norm already (to float32
precision) is stored bit for bit as given, so a memory saved and loaded again, or an exemplar sent
to another robot (rns_ros.core.fleet), holds exactly the same numbers. Each exemplar remembers the
robot that taught it (`origin`, None = here), and `ledger` carries the fleet sync's bookkeeping;
both are saved and loaded with the memory.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# Rows whose norm is within this of 1 count as unit-norm already and are stored as given (a second
# F.normalize changes the last bit of ~40% of float32 rows; this keeps save/load and fleet copies exact).
UNIT_NORM_TOLERANCE = 1e-5


def unit_rows(rows: torch.Tensor) -> torch.Tensor:
    """`rows` (m, d) float32 made unit-norm along the last dimension; rows that already are (within
    UNIT_NORM_TOLERANCE) are returned bit for bit."""
    norms = rows.norm(dim=-1, keepdim=True)
    return torch.where((norms - 1.0).abs() <= UNIT_NORM_TOLERANCE, rows, F.normalize(rows, dim=-1))

from rns_ros.core.memory.exemplars import Exemplar
from rns_ros.core.memory.fusion import DEFAULT_LAMBDAS, fuse_features
from rns_ros.core.memory.names import check_new_names, describe_names, find_name, shorten
from rns_ros.core.memory.retrieval import InnerProductIndex


@dataclass(frozen=True)
class ClassRecord:
    """A read-only view of one class."""

    id: int
    name: str | None  # None = a class without a name (no text feature)
    prompt: str | None  # the text the feature was computed from, when it was not the name
    has_text: bool
    exemplar_ids: tuple[int, ...]  # exemplars holding a feature of this class, ascending
    exemplar_origins: tuple[str | None, ...] = ()  # robot that taught each of them (None = here)


@dataclass
class _ClassState:
    name: str | None
    prompt: str | None
    text: torch.Tensor | None  # (d,) unit-norm on the memory's device


@dataclass
class _ExemplarState:
    exemplar: Exemplar | None
    keys: list[int]  # bank row keys (index ids) of its features
    class_ids: list[int]  # class of each of those rows
    origin: str | None = None  # the robot that taught it (fleet.robot_id), None = this one


class _Bank:
    """The rows of V in ascending key order, in buffers with spare capacity: appending copies only
    the new rows (amortised) past the end; removing copies the kept rows into new buffers (O(M),
    removals are rare). Rows [:n] of a buffer are therefore never written again, so views handed
    out by `SupportMemory.bank()` stay valid and unchanged after later updates."""

    def __init__(self, dim: int, device: torch.device):
        self.n = 0
        self._feats = torch.zeros(0, dim, dtype=torch.float32, device=device)
        self._classes = torch.zeros(0, dtype=torch.int64, device=device)
        self._keys = torch.zeros(0, dtype=torch.int64, device=device)

    @property
    def feats(self) -> torch.Tensor:
        return self._feats[:self.n]

    @property
    def classes(self) -> torch.Tensor:
        return self._classes[:self.n]

    @property
    def keys(self) -> torch.Tensor:
        return self._keys[:self.n]

    def append(self, feats: torch.Tensor, classes: torch.Tensor, keys: torch.Tensor) -> None:
        need = self.n + feats.shape[0]
        if need > self._feats.shape[0]:
            cap = max(need, 2 * self._feats.shape[0], 256)
            grown = [torch.empty((cap,) + t.shape[1:], dtype=t.dtype, device=t.device)
                     for t in (self._feats, self._classes, self._keys)]
            for new, old in zip(grown, (self._feats, self._classes, self._keys)):
                new[:self.n] = old[:self.n]
            self._feats, self._classes, self._keys = grown
        self._feats[self.n:need] = feats
        self._classes[self.n:need] = classes
        self._keys[self.n:need] = keys
        self.n = need

    def remove(self, keys: torch.Tensor) -> None:
        keep = ~torch.isin(self.keys, keys)
        n_keep = int(keep.sum())
        kept = []
        for buf in (self._feats, self._classes, self._keys):
            new = torch.empty_like(buf)
            new[:n_keep] = buf[:self.n][keep]
            kept.append(new)
        self._feats, self._classes, self._keys = kept
        self.n = n_keep


def _locked(method):
    """Run `method` under the memory's lock: a ROS service may teach while a frame retrieves."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class SupportMemory:
    """Classes + visual support set V + retrieval index. See module docstring.

    dim: feature dimension d. device: where features and the torch index live.
    backbone_identity: the identity of the backbone that made the features (persisted; a different
    backbone at load time triggers re-encoding). index_backend: see `retrieval.InnerProductIndex`.
    """

    def __init__(self, dim: int, *, device: str | torch.device = "cpu",
                 backbone_identity: str | None = None, index_backend: str = "auto",
                 approximate_above: int | None = None):
        if not _is_int(dim) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = int(dim)
        self.device = torch.device(device)
        self.backbone_identity = backbone_identity
        self.index_backend = index_backend
        self._index = InnerProductIndex(self.dim, self.device, index_backend,
                                        approximate_above=approximate_above)
        self._classes: dict[int, _ClassState] = {}
        self._exemplars: dict[int, _ExemplarState] = {}
        self._next_class_id = 1
        self._next_exemplar_id = 1
        self._next_key = 0
        # The bank V, rows ordered by ascending key (keys only grow, removal keeps the order), so a
        # key found by the index maps to its row with one searchsorted.
        self._bank = _Bank(self.dim, self.device)
        self._version = 0
        self._cache: dict[str, object] = {}
        self._lock = threading.RLock()
        # JSON-ready bookkeeping of the fleet sync (rns_ros.core.fleet.ledger), saved and loaded with
        # the memory so that it changes atomically with what it describes; opaque to the memory.
        self.ledger: dict = {}

    # ------------------------------------------------------------------ read access
    @property
    def version(self) -> int:
        """Bumps on every successful change; use it to invalidate derived caches."""
        return self._version

    @property
    def class_ids(self) -> list[int]:
        """All class ids, ascending: the column order of every probability matrix."""
        return sorted(self._classes)

    @property
    def classes(self) -> list[ClassRecord]:
        return [self.class_record(cid) for cid in self.class_ids]

    @property
    def exemplar_ids(self) -> list[int]:
        return sorted(self._exemplars)

    @property
    def num_exemplars(self) -> int:
        return len(self._exemplars)

    @property
    def num_features(self) -> int:
        """Rows in the bank V."""
        return int(self._bank_keys.shape[0])

    @property
    def _bank_feats(self) -> torch.Tensor:
        return self._bank.feats

    @property
    def _bank_classes(self) -> torch.Tensor:
        return self._bank.classes

    @property
    def _bank_keys(self) -> torch.Tensor:
        return self._bank.keys

    @property
    def next_class_id(self) -> int:
        return self._next_class_id

    @property
    def next_exemplar_id(self) -> int:
        return self._next_exemplar_id

    @property
    def index(self) -> InnerProductIndex:
        return self._index

    def _state(self, cid) -> _ClassState:
        if not _is_int(cid) or int(cid) not in self._classes:
            raise ValueError(f"unknown class id {cid!r}; known ids: {self.class_ids}")
        return self._classes[int(cid)]

    @_locked
    def class_record(self, cid: int) -> ClassRecord:
        state = self._state(cid)
        eids = tuple(sorted(e for e, ex in self._exemplars.items() if int(cid) in ex.class_ids))
        return ClassRecord(id=int(cid), name=state.name, prompt=state.prompt,
                           has_text=state.text is not None, exemplar_ids=eids,
                           exemplar_origins=tuple(self._exemplars[e].origin for e in eids))

    @_locked
    def class_id(self, name: str) -> int:
        """The id of the class called `name`, in any spelling (names.find_name)."""
        names = {state.name: cid for cid, state in self._classes.items() if state.name is not None}
        found = find_name(name, names) if isinstance(name, str) else None
        if found is None:
            raise ValueError(f"no class named {shorten(str(name))}; known names: {describe_names(names)}")
        return names[found]

    @_locked
    def text_feature(self, cid: int) -> torch.Tensor | None:
        """(d,) text feature of class `cid`, or None when it has no text."""
        text = self._state(cid).text
        return None if text is None else text.clone()

    def _exemplar_state(self, eid) -> _ExemplarState:
        if not _is_int(eid) or int(eid) not in self._exemplars:
            raise ValueError(f"unknown exemplar id {eid!r}; known ids: {self.exemplar_ids}")
        return self._exemplars[int(eid)]

    @_locked
    def exemplar(self, eid: int) -> Exemplar | None:
        """The raw exemplar kept with exemplar `eid` (None when only its features were given)."""
        return self._exemplar_state(eid).exemplar

    @_locked
    def exemplar_class_ids(self, eid: int) -> list[int]:
        """The class of each feature row of exemplar `eid` (without copying its features)."""
        return list(self._exemplar_state(eid).class_ids)

    @_locked
    def exemplar_origin(self, eid: int) -> str | None:
        """The robot that taught exemplar `eid` (its fleet.robot_id), or None when it was taught here."""
        return self._exemplar_state(eid).origin

    @_locked
    def exemplar_features(self, eid: int) -> tuple[torch.Tensor, list[int]]:
        """(m, d) features of exemplar `eid` and their class ids."""
        state = self._exemplar_state(eid)
        keys = torch.as_tensor(state.keys, dtype=torch.int64, device=self.device)
        rows = torch.searchsorted(self._bank_keys, keys)
        return self._bank_feats[rows].clone(), list(state.class_ids)

    @_locked
    def text_matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, d) text features in `class_ids` order (zero rows where a class has no text) and the
        (C,) bool mask of classes with text."""
        cached = self._cache.get("text")
        if cached is None:
            ids = self.class_ids
            mat = torch.zeros(len(ids), self.dim, dtype=torch.float32, device=self.device)
            has = torch.zeros(len(ids), dtype=torch.bool, device=self.device)
            for row, cid in enumerate(ids):
                text = self._classes[cid].text
                if text is not None:
                    mat[row] = text
                    has[row] = True
            cached = self._cache["text"] = (mat, has)
        return cached[0].clone(), cached[1].clone()

    def bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The visual support set V: (M, d) unit-norm per-image class features, (M,) int64 class ids.

        Zero-copy views that later updates never modify (a snapshot for free): treat them as
        read-only, clone before writing into them."""
        return self._bank_feats, self._bank_classes

    @_locked
    def prototypes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Aggregated visual class features v_c = normalise(sum_i v_c^i) (RNS eq. 5) for the classes
        with visual support: (K, d) and their (K,) int64 class ids, ascending."""
        cached = self._cache.get("prototypes")
        if cached is None:
            ids, inverse = torch.unique(self._bank_classes, sorted=True, return_inverse=True)
            sums = torch.zeros(ids.shape[0], self.dim, dtype=torch.float32, device=self.device)
            sums.index_add_(0, inverse, self._bank_feats)
            cached = self._cache["prototypes"] = (F.normalize(sums, dim=-1), ids)
        return cached[0].clone(), cached[1].clone()

    @_locked
    def fused_features(self, text: torch.Tensor | None = None,
                       lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> tuple[torch.Tensor, torch.Tensor]:
        """f_c^lambda = normalise(lambda v_c + (1 - lambda) t_c) for the classes with visual support.

        `text`: (K, d) text rows aligned with `prototypes()`'s class ids; None = the classes' own text
        features (refused if one of them has none: pass substitutes, e.g. the mean text).
        Returns ((K, L, d), (K,) class ids).
        """
        visual, ids = self.prototypes()
        if text is None:
            missing = [int(c) for c in ids.tolist() if self._classes[int(c)].text is None]
            if missing:
                raise ValueError(f"classes {missing} have no text feature; pass `text` with a "
                                 "substitute row for each (e.g. the normalised mean text)")
            text = torch.stack([self._classes[int(c)].text for c in ids.tolist()]) if len(ids) else \
                visual.new_zeros(0, self.dim)
        text = torch.as_tensor(text).to(device=self.device, dtype=torch.float32)
        if tuple(text.shape) != tuple(visual.shape):
            raise ValueError(f"text must have shape {tuple(visual.shape)} (one row per class with "
                             f"visual support), got {tuple(text.shape)}")
        return fuse_features(visual, text, lambdas), ids

    @_locked
    def search(self, queries, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The k nearest bank rows of each query by inner product (RNS section 3).

        `queries`: (N, d). Returns (scores (N, k'), class ids (N, k'), bank rows (N, k')) with
        k' = min(k, num_features); rows index `bank()`. An approximate index may leave slots
        unfilled: class id 0, row -1, score -inf.
        """
        queries = torch.as_tensor(queries)
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (N, {self.dim}), got {tuple(queries.shape)}")
        if not bool(torch.isfinite(queries).all()):
            raise ValueError("queries contain NaN or inf")
        scores, keys = self._index.search(queries, k)
        keys = keys.to(self.device)
        found = keys >= 0
        rows = torch.searchsorted(self._bank_keys, keys.clamp(min=0))
        rows = rows.clamp(max=max(self.num_features - 1, 0))
        classes = torch.where(found, self._bank_classes[rows] if self.num_features else rows,
                              torch.zeros_like(rows))
        rows = torch.where(found, rows, torch.full_like(rows, -1))
        return scores.to(self.device), classes, rows

    # ------------------------------------------------------------------ classes
    def _check_text(self, text_feature) -> torch.Tensor | None:
        if text_feature is None:
            return None
        text = torch.as_tensor(text_feature).detach().to(torch.float32)
        if text.dim() == 2 and text.shape[0] == 1:
            text = text[0]
        if text.dim() != 1 or text.shape[0] != self.dim:
            raise ValueError(f"text_feature must have shape ({self.dim},), got {tuple(text.shape)}")
        if not bool(torch.isfinite(text).all()):
            raise ValueError("text_feature contains NaN or inf")
        if float(text.norm()) == 0.0:
            raise ValueError("text_feature is all zeros; pass None for a class without text")
        return unit_rows(text).to(self.device)

    @_locked
    def add_class(self, name: str | None, text_feature=None, *, prompt: str | None = None) -> int:
        """Register a class and return its new id (>= 1, never reused).

        `name`: unique display name (names.py's rule: stripped, at most MAX_NAME_CHARS characters,
        unique without case), or None for a nameless class. `text_feature`: (d,) tensor (made
        unit-norm) or None = no text. `prompt`: the text the feature came from, when not the name
        (kept for re-encoding).
        """
        if name is not None:
            name = check_new_names([name], [s.name for s in self._classes.values()])[0]
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string or None, got {prompt!r}")
        text = self._check_text(text_feature)
        cid = self._next_class_id
        self._classes[cid] = _ClassState(name=name, prompt=prompt, text=text)
        self._next_class_id += 1
        self._changed()
        return cid

    @_locked
    def set_text_feature(self, cid: int, text_feature) -> None:
        """Replace (or, with None, drop) the text feature of class `cid`."""
        state = self._state(cid)
        state.text = self._check_text(text_feature)
        self._changed()

    @_locked
    def remove_class(self, cid: int) -> None:
        """Remove class `cid` and its features from every exemplar. Exemplars left with no feature
        are removed; the others keep their other classes (their raw label map loses this class)."""
        self._state(cid)
        cid = int(cid)
        drop_keys: list[int] = []
        for state in self._exemplars.values():
            drop_keys += [k for k, c in zip(state.keys, state.class_ids) if c == cid]
        # Prepare every new exemplar state first, so nothing changes if a step fails.
        new_states: dict[int, _ExemplarState | None] = {}
        for eid, state in self._exemplars.items():
            if cid not in state.class_ids and (state.exemplar is None
                                               or cid not in state.exemplar.class_ids()):
                continue
            keep = [i for i, c in enumerate(state.class_ids) if c != cid]
            if not keep:
                new_states[eid] = None
                continue
            raw = state.exemplar
            if raw is not None and cid in raw.class_ids():
                labels = np.where(raw.labels == cid, 0, raw.labels)
                raw = raw.with_labels(labels) if np.any(labels) else None
            new_states[eid] = _ExemplarState(raw, [state.keys[i] for i in keep],
                                             [state.class_ids[i] for i in keep], state.origin)
        self._drop_rows(drop_keys)
        for eid, new in new_states.items():
            if new is None:
                del self._exemplars[eid]
            else:
                self._exemplars[eid] = new
        del self._classes[cid]
        self._changed()

    # ------------------------------------------------------------------ exemplars
    def _check_features(self, feats, class_ids) -> tuple[torch.Tensor, list[int]]:
        feats = torch.as_tensor(feats).detach()
        if feats.dim() == 1:
            feats = feats[None]
        if feats.dim() != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"features must have shape (m, {self.dim}), got {tuple(feats.shape)}")
        if feats.shape[0] == 0:
            raise ValueError("no features given; an exemplar needs at least one class feature")
        if not feats.is_floating_point():
            raise ValueError(f"features must be floating point, got {feats.dtype}")
        feats = feats.to(torch.float32)
        if not bool(torch.isfinite(feats).all()):
            raise ValueError("features contain NaN or inf")
        norms = feats.norm(dim=1)
        if bool((norms == 0).any()):
            raise ValueError(f"feature rows {torch.nonzero(norms == 0).flatten().tolist()} are all zeros")
        ids = class_ids.tolist() if isinstance(class_ids, (torch.Tensor, np.ndarray)) else list(class_ids)
        if len(ids) != feats.shape[0] or not all(_is_int(c) for c in ids):
            raise ValueError(f"class_ids must be {feats.shape[0]} ints (one per feature row), got {ids!r}")
        ids = [int(c) for c in ids]
        unknown = sorted(set(ids) - set(self._classes))
        if unknown:
            raise ValueError(f"unknown class ids {unknown}; add the classes first (known: {self.class_ids})")
        return unit_rows(feats).to(self.device), ids

    @_locked
    def add_image_features(self, feats, class_ids, *, exemplar: Exemplar | None = None,
                           origin: str | None = None) -> int:
        """Add the per-image class features of one support image; returns its exemplar id.

        `feats`: (m, d) float (made unit-norm), `class_ids`: m known class ids (usually from
        `encode_exemplar`). `exemplar`: the raw image + label map, kept for re-encoding; its
        annotated classes must all be known and include every id in `class_ids`. `origin`: the robot
        that taught it, when another robot did (fleet sync); None = taught here.
        """
        if origin is not None and (not isinstance(origin, str) or not origin):
            raise ValueError(f"origin must be a non-empty robot id or None, got {origin!r}")
        feats, ids = self._check_features(feats, class_ids)
        if exemplar is not None:
            if not isinstance(exemplar, Exemplar):
                raise ValueError(f"exemplar must be an Exemplar, got {type(exemplar).__name__}")
            annotated = set(exemplar.class_ids())
            unknown = sorted(annotated - set(self._classes))
            if unknown:
                raise ValueError(f"exemplar annotates unknown class ids {unknown}; add the classes first")
            extra = sorted(set(ids) - annotated)
            if extra:
                raise ValueError(f"class ids {extra} have features but no pixel in the exemplar's labels")
        return self._insert_exemplar(self._next_exemplar_id, feats, ids, exemplar, origin)

    def _insert_exemplar(self, eid: int, feats: torch.Tensor, ids: list[int],
                         exemplar: Exemplar | None, origin: str | None = None) -> int:
        """Insert validated unit-norm rows under exemplar id `eid` (used by add and by loading)."""
        if eid in self._exemplars:
            raise ValueError(f"exemplar id {eid} is already in use")
        keys = list(range(self._next_key, self._next_key + feats.shape[0]))
        self._index.add(np.asarray(keys, dtype=np.int64), feats)  # may raise: nothing changed yet
        self._next_key += len(keys)
        self._bank.append(feats, torch.as_tensor(ids, dtype=torch.int64, device=self.device),
                          torch.as_tensor(keys, dtype=torch.int64, device=self.device))
        self._exemplars[eid] = _ExemplarState(exemplar, keys, list(ids), origin)
        self._next_exemplar_id = max(self._next_exemplar_id, eid + 1)
        self._changed()
        return eid

    def _drop_rows(self, keys: list[int]) -> None:
        if not keys:
            return
        self._index.remove(np.asarray(keys, dtype=np.int64))
        self._bank.remove(torch.as_tensor(keys, dtype=torch.int64, device=self.device))

    @_locked
    def remove_exemplar(self, eid: int) -> None:
        """Remove exemplar `eid` and all its features."""
        state = self._exemplar_state(eid)
        self._drop_rows(state.keys)
        del self._exemplars[int(eid)]
        self._changed()

    @_locked
    def remove_exemplars(self, class_id: int) -> list[int]:
        """Remove every exemplar holding a feature of class `class_id` (the class stays); returns
        their ids."""
        self._state(class_id)
        eids = sorted(e for e, s in self._exemplars.items() if int(class_id) in s.class_ids)
        if not eids:
            return []
        self._drop_rows([k for e in eids for k in self._exemplars[e].keys])
        for eid in eids:
            del self._exemplars[eid]
        self._changed()
        return eids

    # ------------------------------------------------------------------ restoring (persistence)
    @_locked
    def _restore_class(self, cid: int, name: str | None, prompt: str | None, text_feature) -> None:
        """Insert a class under a given id (loading); keeps ids stable across save/load."""
        if cid in self._classes or cid < 1:
            raise ValueError(f"class id {cid} is invalid or already in use")
        if name is not None and any(s.name == name for s in self._classes.values()):
            raise ValueError(f"a class named {name!r} already exists")
        self._classes[cid] = _ClassState(name=name, prompt=prompt, text=self._check_text(text_feature))
        self._next_class_id = max(self._next_class_id, cid + 1)
        self._changed()

    def continue_version_after(self, previous_version: int) -> None:
        """Make `version` larger than `previous_version`, for a memory that replaces another one
        (a loaded memory taking over from the running one): consumers that compare versions then
        never see it go back."""
        with self._lock:
            self._version = max(self._version, int(previous_version) + 1)

    def _set_next_ids(self, next_class_id: int, next_exemplar_id: int) -> None:
        self._next_class_id = max(self._next_class_id, int(next_class_id))
        self._next_exemplar_id = max(self._next_exemplar_id, int(next_exemplar_id))

    def _changed(self) -> None:
        self._version += 1
        self._cache.clear()
