"""Exact (and optionally approximate) inner-product search over a growing, shrinking feature set.

The one module that imports faiss. The index is kept up to date on every insert and removal and is
never rebuilt per query (RNS section 3: the authors rebuild per image; a persistent index is the
better engineering).

Backends:
- ``"faiss"``: ``IndexIDMap2(IndexFlatIP)`` on the CPU, exact. The CPU default.
- ``"faiss-gpu"``: ``GpuIndexFlatIP``, exact; opt-in only (never "auto"): it takes the queries as
  host arrays and hands the ids back through the host on every search, and faiss-gpu 1.15.1 brings
  a CUDA 12 runtime beside torch's CUDA 13. Needs faiss with GPU support *and* CUDA (faiss-gpu
  imports on CPU-only machines, but its GPU index fails there).
- ``"torch"``: a resident (M, d) tensor on `device`, one matmul + top-k per search, no host round trip.
  What "auto" picks on CUDA (issue 27), whether or not faiss-gpu is installed.
- ``approximate_above=n`` (faiss CPU only): once the index holds n vectors, it is converted once to an
  ``IndexIVFFlat`` (inner product, trained on the contents at that moment); later inserts and
  removals update it. Recall vs exact search is measured by ``scripts/bench_support_scale.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

BACKENDS = ("auto", "faiss", "faiss-gpu", "torch")
_SCORE_BLOCK = 1 << 26  # largest (queries x rows) score matrix the torch backend makes at once


@dataclass(frozen=True)
class IvfSettings:
    """How the approximate (IVF) index is built and searched."""

    nlist: int | None = None  # inverted lists; None = sqrt(n) at conversion (<= n / 39, <= 16384)
    nprobe: int = 32  # lists visited per query: higher = better recall, slower
    train_sample: int = 40  # training points per list (k-means sample = nlist * train_sample)
    seed: int = 0  # k-means seed, for reproducible lists


def _import_faiss():
    try:
        import faiss  # noqa: PLC0415  (heavy, imported only when an index is built)
    except ImportError as exc:  # pragma: no cover - faiss is a declared dependency
        raise RuntimeError("faiss is not installed; install faiss-cpu (or faiss-gpu) or use "
                           "backend='torch'") from exc
    return faiss


def faiss_has_gpu() -> bool:
    """True when the installed faiss build has GPU support and CUDA is available to torch."""
    try:
        faiss = _import_faiss()
    except RuntimeError:
        return False
    return (hasattr(faiss, "StandardGpuResources") and torch.cuda.is_available()
            and faiss.get_num_gpus() > 0)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend "auto" stands for on `device` (or `backend` itself, validated)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown index backend {backend!r}; choose one of {BACKENDS}")
    if backend == "faiss-gpu" and not faiss_has_gpu():
        raise ValueError("backend 'faiss-gpu' needs faiss built with GPU support and a CUDA device; "
                         "use backend='torch' or 'faiss'")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return "torch"
    if device.type == "cpu":
        return "faiss"
    return "torch"


def _as_ids(ids) -> np.ndarray:
    ids = torch.as_tensor(ids).cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D integer array, got shape {ids.shape}, dtype {ids.dtype}")
    return ids.astype(np.int64)


class InnerProductIndex:
    """Inner-product k-nearest-neighbour index keyed by unique int64 ids.

    `add(ids, feats)`, `remove(ids)`, `search(queries, k)`. Features are used as given (the caller
    normalises them); search returns float32 scores and int64 ids as torch tensors on `device`.
    """

    def __init__(self, dim: int, device: str | torch.device = "cpu", backend: str = "auto", *,
                 approximate_above: int | None = None, ivf: IvfSettings = IvfSettings()):
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.device = torch.device(device)
        self.backend = resolve_backend(backend, self.device)
        if approximate_above is not None and self.backend != "faiss":
            raise ValueError(f"approximate_above needs the CPU 'faiss' backend, not {self.backend!r}")
        if approximate_above is not None and approximate_above < 1:
            raise ValueError(f"approximate_above must be >= 1 or None, got {approximate_above}")
        self.approximate_above = approximate_above
        self.ivf = ivf
        # Host bookkeeping: the ids held (a set for O(1) membership) and, for the tensor-backed
        # backends, the id of every buffer row in row order (faiss CPU: insertion order).
        self._id_set: set[int] = set()
        self._ids = np.zeros(0, dtype=np.int64)
        self._faiss_index = None
        self._gpu_res = None
        # torch / faiss-gpu: rows live in a buffer with spare capacity, so an insert copies only the
        # new rows (amortised), and a removal moves only as many tail rows as it removed.
        self._n = 0
        self._buf = torch.zeros(0, dim, dtype=torch.float32, device=self.device)
        self._buf_ids = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._build_empty()

    # ------------------------------------------------------------------ construction
    def _build_empty(self) -> None:
        if self.backend == "faiss":
            faiss = _import_faiss()
            self._faiss_index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        elif self.backend == "faiss-gpu":
            faiss = _import_faiss()
            self._gpu_res = faiss.StandardGpuResources()
            cfg = faiss.GpuIndexFlatConfig()
            cfg.device = self.device.index or 0
            self._faiss_index = faiss.GpuIndexFlatIP(self._gpu_res, self.dim, cfg)

    @property
    def is_approximate(self) -> bool:
        return self._faiss_index is not None and type(self._faiss_index).__name__ == "IndexIVFFlat"

    def __len__(self) -> int:
        return len(self._id_set)

    def ids(self) -> np.ndarray:
        """The ids held (a copy; insertion order until the first removal)."""
        return self._ids.copy()

    def memory_bytes(self) -> int:
        """Approximate bytes held by the index: vectors and ids (allocated capacity for the tensor
        backends) and, for IVF, the centroids."""
        rows = self._buf.shape[0] if self.backend in ("torch", "faiss-gpu") else len(self)
        size = rows * (self.dim * 4 + 8)
        if self.backend == "faiss-gpu":
            size += len(self) * self.dim * 4  # the GPU index's own copy
        if self.is_approximate:
            size += self._faiss_index.nlist * self.dim * 4
        return size

    # ------------------------------------------------------------------ updates
    def _check_feats(self, feats, n: int) -> torch.Tensor:
        feats = torch.as_tensor(feats)
        if feats.dim() != 2 or feats.shape[1] != self.dim or feats.shape[0] != n:
            raise ValueError(f"features must have shape ({n}, {self.dim}), got {tuple(feats.shape)}")
        feats = feats.detach().to(torch.float32)
        if not bool(torch.isfinite(feats).all()):
            raise ValueError("features contain NaN or inf")
        return feats

    def add(self, ids, feats) -> None:
        """Insert rows `feats` (n, dim) under new unique `ids` (n,). Refused with no change if an id
        is already present or repeated."""
        ids = _as_ids(ids)
        feats = self._check_feats(feats, ids.size)
        if ids.size == 0:
            return
        if np.unique(ids).size != ids.size:
            raise ValueError("ids to add contain duplicates")
        clash = [i for i in ids.tolist() if i in self._id_set]
        if clash:
            raise ValueError(f"ids already in the index: {clash[:5]}")
        if self.backend in ("torch", "faiss-gpu"):
            self._append_rows(ids, feats.to(self.device))
            if self.backend == "faiss-gpu":
                self._faiss_index.add(np.ascontiguousarray(feats.cpu().numpy()))
        else:
            self._faiss_index.add_with_ids(np.ascontiguousarray(feats.cpu().numpy()), ids)
        self._ids = np.concatenate([self._ids, ids])
        self._id_set.update(ids.tolist())
        if (self.approximate_above is not None and not self.is_approximate
                and len(self) >= self.approximate_above):
            self._convert_to_ivf()

    def remove(self, ids) -> None:
        """Remove the rows with these ids. Refused with no change if an id is not present."""
        ids = _as_ids(ids)
        if ids.size == 0:
            return
        if np.unique(ids).size != ids.size:
            raise ValueError("ids to remove contain duplicates")
        missing = [i for i in ids.tolist() if i not in self._id_set]
        if missing:
            raise ValueError(f"ids not in the index: {missing[:5]}")
        if self.backend in ("torch", "faiss-gpu"):
            self._remove_rows(np.nonzero(np.isin(self._ids, ids))[0])
            if self.backend == "faiss-gpu":
                # GpuIndexFlat cannot remove rows: refill it from the resident buffer (removal is rare).
                self._faiss_index.reset()
                if self._n:
                    self._faiss_index.add(np.ascontiguousarray(self._buf[:self._n].cpu().numpy()))
        else:
            faiss = _import_faiss()
            removed = self._faiss_index.remove_ids(faiss.IDSelectorBatch(ids.size, faiss.swig_ptr(ids)))
            assert removed == ids.size, (removed, ids.size)
            self._ids = self._ids[~np.isin(self._ids, ids)]
        self._id_set.difference_update(ids.tolist())

    def _append_rows(self, ids: np.ndarray, feats: torch.Tensor) -> None:
        need = self._n + ids.size
        if need > self._buf.shape[0]:
            cap = max(need, 2 * self._buf.shape[0], 1024)
            buf = torch.empty(cap, self.dim, dtype=torch.float32, device=self.device)
            buf_ids = torch.empty(cap, dtype=torch.int64, device=self.device)
            buf[:self._n] = self._buf[:self._n]
            buf_ids[:self._n] = self._buf_ids[:self._n]
            self._buf, self._buf_ids = buf, buf_ids
        self._buf[self._n:need] = feats
        self._buf_ids[self._n:need] = torch.from_numpy(ids).to(self.device)
        self._n = need

    def _remove_rows(self, positions: np.ndarray) -> None:
        """Drop buffer rows at `positions` by moving kept rows from the tail into the holes."""
        n_new = self._n - positions.size
        holes = positions[positions < n_new]
        tail = np.arange(n_new, self._n)
        tail = tail[~np.isin(tail, positions)]
        if holes.size:
            h = torch.from_numpy(holes).to(self.device)
            t = torch.from_numpy(tail).to(self.device)
            self._buf[h] = self._buf[t]
            self._buf_ids[h] = self._buf_ids[t]
            self._ids[holes] = self._ids[tail]
        self._ids = self._ids[:n_new].copy()
        self._n = n_new

    def _convert_to_ivf(self) -> None:
        """Replace the flat CPU index by an IVF index trained on the current contents (once)."""
        faiss = _import_faiss()
        flat = self._faiss_index
        n = len(self)
        vecs = flat.index.reconstruct_n(0, n)
        ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
        # sqrt(n) lists, but at least ~39 training points per list (k-means needs them).
        nlist = self.ivf.nlist or int(min(16384, round(math.sqrt(n)), n // 39))
        nlist = max(1, min(nlist, n))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = self.ivf.seed
        sample = min(n, nlist * self.ivf.train_sample)
        rng = np.random.default_rng(self.ivf.seed)
        train = vecs if sample == n else vecs[rng.choice(n, sample, replace=False)]
        ivf.train(np.ascontiguousarray(train))
        ivf.add_with_ids(vecs, ids)
        ivf.nprobe = min(self.ivf.nprobe, nlist)
        self._faiss_index = ivf
        self._ivf_quantizer = quantizer  # keep the quantizer alive alongside the index

    # ------------------------------------------------------------------ search
    def search(self, queries, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k highest inner products per query.

        `queries`: (N, dim). Returns (scores (N, k') float32, ids (N, k') int64) on `device`, rows
        sorted by decreasing score, with k' = min(k, len(self)). The approximate index may find fewer
        than k' neighbours for a query: those slots hold id -1 and score -inf.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        queries = torch.as_tensor(queries)
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (N, {self.dim}), got {tuple(queries.shape)}")
        n_q = int(queries.shape[0])
        k = min(int(k), len(self))
        if k == 0 or n_q == 0:
            return (torch.zeros(n_q, k, dtype=torch.float32, device=self.device),
                    torch.zeros(n_q, k, dtype=torch.int64, device=self.device))
        if self.backend == "torch":
            q = queries.detach().to(device=self.device, dtype=torch.float32)
            # Bound the (queries x rows) score block to ~2^26 floats; one block up to ~1e5 rows.
            step = max(1, _SCORE_BLOCK // len(self))
            rows = self._buf[:self._n]
            parts = [torch.topk(q[i:i + step] @ rows.T, k, dim=1) for i in range(0, n_q, step)]
            scores = torch.cat([p.values for p in parts])
            pos = torch.cat([p.indices for p in parts])
            return scores, self._buf_ids[pos]
        q = np.ascontiguousarray(queries.detach().to(torch.float32).cpu().numpy())
        scores, found = self._faiss_index.search(q, k)
        scores_t = torch.from_numpy(scores)
        if self.backend == "faiss-gpu":
            found_t = self._buf_ids[torch.from_numpy(found).to(self.device)]
            return scores_t.to(self.device), found_t
        found_t = torch.from_numpy(found)
        scores_t = torch.where(found_t < 0, torch.full_like(scores_t, -math.inf), scores_t)
        return scores_t.to(self.device), found_t.to(self.device)
