"""InnerProductIndex backends against brute-force numpy search, including after removals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rns_ros.core.memory import retrieval
from rns_ros.core.memory.retrieval import InnerProductIndex, IvfSettings, resolve_backend

CPU_BACKENDS = ["faiss", "torch"]


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(feats, ids, queries, k):
    scores = queries.astype(np.float64) @ feats.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_search_matches_brute_force_after_adds_and_removals(backend):
    rng = np.random.default_rng(0)
    d = 32
    index = InnerProductIndex(d, backend=backend)
    feats = unit_rows(rng, 300, d)
    ids = rng.permutation(10_000)[:300].astype(np.int64)  # sparse, unordered ids
    index.add(ids[:200], feats[:200])
    index.add(ids[200:], torch.from_numpy(feats[200:]))
    removed = ids[rng.choice(300, 120, replace=False)]
    index.remove(removed[:60])
    index.remove(torch.from_numpy(removed[60:]))
    keep = ~np.isin(ids, removed)
    assert len(index) == int(keep.sum())
    assert sorted(index.ids().tolist()) == sorted(ids[keep].tolist())
    queries = unit_rows(rng, 50, d)
    scores, found = index.search(torch.from_numpy(queries), 5)
    exp_scores, exp_ids = brute_force(feats[keep], ids[keep], queries, 5)
    assert scores.dtype == torch.float32 and found.dtype == torch.int64
    np.testing.assert_array_equal(found.numpy(), exp_ids)
    np.testing.assert_allclose(scores.numpy(), exp_scores, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_k_clipped_and_empty_index(backend):
    index = InnerProductIndex(4, backend=backend)
    scores, found = index.search(torch.ones(3, 4), 4)
    assert scores.shape == (3, 0) and found.shape == (3, 0)
    index.add([7, 9], torch.eye(4)[:2])
    scores, found = index.search(torch.eye(4)[:1], 10)
    assert found.tolist() == [[7, 9]] and scores.tolist() == [[1.0, 0.0]]
    index.remove([7, 9])
    assert index.search(torch.ones(2, 4), 1)[1].shape == (2, 0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_refused_updates_change_nothing(backend):
    index = InnerProductIndex(4, backend=backend)
    index.add([1, 2], torch.eye(4)[:2])
    bad_calls = [
        lambda: index.add([2, 3], torch.eye(4)[:2]),  # id already present
        lambda: index.add([3, 3], torch.eye(4)[:2]),  # repeated id
        lambda: index.add([3], torch.eye(4)[:2]),  # count mismatch
        lambda: index.add([3], torch.ones(1, 5)),  # wrong dim
        lambda: index.add([3], torch.tensor([[float("nan"), 0, 0, 0]])),
        lambda: index.remove([1, 99]),  # 99 not present
        lambda: index.search(torch.ones(2, 5), 1),
        lambda: index.search(torch.ones(2, 4), 0),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call()
    assert sorted(index.ids().tolist()) == [1, 2]
    assert index.search(torch.eye(4)[1:2], 2)[1].tolist() == [[2, 1]]


def test_auto_backend_and_bad_names(monkeypatch):
    assert resolve_backend("auto", torch.device("cpu")) == "faiss"
    monkeypatch.setattr(retrieval, "faiss_has_gpu", lambda: True)  # faiss-gpu installed, a GPU present
    assert resolve_backend("auto", torch.device("cuda:1")) == "torch"  # faiss-gpu is opt-in only
    assert resolve_backend("faiss-gpu", torch.device("cuda")) == "faiss-gpu"
    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown index backend"):
        InnerProductIndex(4, backend="annoy")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="faiss-gpu"):
            InnerProductIndex(4, backend="faiss-gpu")
    with pytest.raises(ValueError, match="approximate_above"):
        InnerProductIndex(4, backend="torch", approximate_above=10)


def test_approximate_index_converts_once_and_keeps_updating():
    rng = np.random.default_rng(1)
    d = 16
    index = InnerProductIndex(d, backend="faiss", approximate_above=400,
                              ivf=IvfSettings(nlist=8, nprobe=8))  # nprobe = nlist: exhaustive
    feats = unit_rows(rng, 600, d)
    ids = np.arange(600, dtype=np.int64) * 3
    index.add(ids[:399], feats[:399])
    assert not index.is_approximate
    index.add(ids[399:], feats[399:])
    assert index.is_approximate
    index.remove(ids[:100])
    queries = unit_rows(rng, 20, d)
    _, found = index.search(queries, 4)
    _, exp_ids = brute_force(feats[100:], ids[100:], queries, 4)
    np.testing.assert_array_equal(found.numpy(), exp_ids)  # visiting every list is exact


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["torch", "faiss-gpu"])
def test_gpu_backends_match_brute_force(backend):
    if backend == "faiss-gpu" and not retrieval.faiss_has_gpu():
        pytest.skip("faiss has no GPU support in this environment")
    rng = np.random.default_rng(2)
    feats, ids = unit_rows(rng, 500, 64), np.arange(500, dtype=np.int64) + 5
    index = InnerProductIndex(64, device="cuda", backend=backend)
    index.add(ids, feats)
    index.remove(ids[::3])
    queries = unit_rows(rng, 40, 64)
    scores, found = index.search(torch.from_numpy(queries).cuda(), 4)
    assert found.device.type == "cuda"
    keep = np.ones(500, bool)
    keep[::3] = False
    _, exp_ids = brute_force(feats[keep], ids[keep], queries, 4)
    np.testing.assert_array_equal(found.cpu().numpy(), exp_ids)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_interleaved_inserts_and_removals_match_brute_force(backend, monkeypatch):
    import rns_ros.core.memory.retrieval as retrieval

    monkeypatch.setattr(retrieval, "_SCORE_BLOCK", 500)  # force the torch backend's query blocks
    rng = np.random.default_rng(3)
    d = 8
    index = InnerProductIndex(d, backend=backend)
    held: dict[int, np.ndarray] = {}
    next_id = 0
    for step in range(40):
        n_add = int(rng.integers(1, 60))
        feats = unit_rows(rng, n_add, d)
        ids = np.arange(next_id, next_id + n_add)
        next_id += n_add
        index.add(ids, feats)
        held.update(zip(ids.tolist(), feats))
        if step % 3 == 2:
            drop = rng.choice(sorted(held), size=len(held) // 3, replace=False)
            index.remove(drop)
            for i in drop.tolist():
                del held[i]
    keys = np.array(sorted(held))
    feats = np.stack([held[i] for i in keys.tolist()])
    queries = unit_rows(rng, 30, d)
    scores, found = index.search(queries, 6)
    exp_scores, exp_ids = brute_force(feats, keys, queries, 6)
    np.testing.assert_array_equal(found.numpy(), exp_ids)
    np.testing.assert_allclose(scores.numpy(), exp_scores, atol=1e-5)
    assert len(index) == len(held) and sorted(index.ids().tolist()) == keys.tolist()
