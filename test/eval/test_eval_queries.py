"""Queries per mode and the way probabilities become label maps, against independent numpy
computations; the baselines' formulas on hand-made memories."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.memory.support import SupportMemory
from rns_ros.eval.methods import (
    Freeda, FreedaConfig, KnnClip, KnnClipConfig, LinearProbeConfig, ZeroShot, build_method,
    filled_text, train_linear_probe,
)
from rns_ros.eval.queries import oracle_queries, patch_probs_to_labels, region_queries


def _bilinear_axis(n_in: int, n_out: int):
    """Source indices and weights of align_corners=False bilinear resampling along one axis."""
    dst = np.arange(n_out)
    src = np.maximum((dst + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def numpy_bilinear(maps: np.ndarray, size) -> np.ndarray:
    """(C, h, w) -> (C, H, W), written out by hand."""
    y0, y1, wy = _bilinear_axis(maps.shape[1], size[0])
    x0, x1, wx = _bilinear_axis(maps.shape[2], size[1])
    top = maps[:, y0][:, :, x0] * (1 - wx) + maps[:, y0][:, :, x1] * wx
    bottom = maps[:, y1][:, :, x0] * (1 - wx) + maps[:, y1][:, :, x1] * wx
    return top * (1 - wy)[None, :, None] + bottom * wy[None, :, None]


def _dense(h, w, d, patch, image_size, resized_size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(h, w, d, generator=gen), dim=-1)
    return DenseFeatures(features=feats, image_size=image_size, resized_size=resized_size, patch_size=patch)


def test_patch_probabilities_are_upsampled_cropped_resized_then_argmaxed():
    dense = _dense(3, 4, 8, 4, image_size=(25, 35), resized_size=(10, 14))  # padded 12 x 16
    probs = torch.softmax(torch.randn(12, 5, generator=torch.Generator().manual_seed(1)) * 3, dim=1)
    grid = probs.numpy().T.reshape(5, 3, 4)
    padded = numpy_bilinear(grid, (12, 16))
    expected = numpy_bilinear(padded[:, :10, :14], (25, 35)).argmax(0)
    np.testing.assert_array_equal(patch_probs_to_labels(probs, dense), expected)


def test_region_queries_pool_the_partition_and_paint_regions_back():
    dense = _dense(2, 3, 6, 4, image_size=(16, 24), resized_size=(8, 12))
    partition = np.zeros((8, 12), dtype=np.int64)
    partition[:, 6:] = 1
    partition[6:, :] = 2
    partition[0, 0] = -1  # unassigned pixel: part of no region
    q = region_queries(dense, partition)
    assert q.segment_ids.tolist() == [0, 1, 2]
    # Region r: normalise(sum over patches of (#pixels of r in the patch / #pixels of r) x_patch).
    x = dense.flat().numpy()
    for row, r in enumerate(q.segment_ids):
        counts = np.array([np.sum(partition[py * 4:(py + 1) * 4, px * 4:(px + 1) * 4] == r)
                           for py in range(2) for px in range(3)], dtype=np.float64)
        v = (counts / counts.sum()) @ x
        np.testing.assert_allclose(q.features[row].numpy(), v / np.linalg.norm(v), atol=1e-6)
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7], [0.0, 1.0, 0.0]])
    labels = q.label_map(probs)
    assert labels.shape == (16, 24)
    assert labels[0, 0] == -1 and labels[0, 1] == -1  # the unassigned pixel, nearest-upsampled x2
    assert labels[4, 2] == 0 and labels[4, 20] == 2 and labels[15, 0] == 1


def test_oracle_queries_are_one_per_class_present():
    dense = _dense(2, 2, 6, 4, image_size=(8, 8), resized_size=(8, 8))
    labels = np.full((8, 8), 3, dtype=np.uint8)
    labels[:, 4:] = 7
    labels[0, :] = 255
    q = oracle_queries(dense, labels)
    assert q.segment_ids.tolist() == [3, 7]
    probs = torch.zeros(2, 9)
    probs[0, 3] = probs[1, 7] = 1
    pred = q.label_map(probs)
    np.testing.assert_array_equal(pred[1:], labels[1:])
    assert (pred[0] == -1).all()


def _memory():
    """3 classes along e0, e1, e2 of R^4; 'c' has no text; bank rows with known similarities."""
    e = torch.eye(4)
    mem = SupportMemory(dim=4)
    mem.add_class("a", text_feature=e[0])
    mem.add_class("b", text_feature=e[1])
    mem.add_class("c", text_feature=None)
    mem.add_image_features(torch.stack([e[0], e[1]]), [1, 2])
    mem.add_image_features(torch.stack([F.normalize(e[1] + e[3], dim=0)]), [2])
    mem.add_image_features(torch.stack([e[2]]), [3])
    return mem


def test_text_of_nameless_classes_is_the_mean_of_the_others():
    text = filled_text(_memory())
    np.testing.assert_allclose(text[2].numpy(), F.normalize(torch.tensor([1.0, 1.0, 0, 0]), dim=0).numpy())


def test_knn_votes_hand_computed():
    mem = _memory()
    q = F.normalize(torch.tensor([[0.1, 1.0, 0.0, 0.8]]), dim=1)
    # Similarities: b-row (e1+e3)/sqrt2 -> (1 + 0.8)/sqrt2/|q|, b-row e1 -> 1/|q|, a-row e0 -> 0.1/|q|.
    n = float(np.sqrt(0.01 + 1 + 0.64))
    s_b2, s_b1, s_a = 1.8 / np.sqrt(2) / n, 1 / n, 0.1 / n
    votes = KnnClip(KnnClipConfig(k=3, temperature=0.5)).knn_votes(q, mem)[0].numpy()
    w = np.exp(np.array([s_b2, s_b1, s_a]) / 0.5)
    w /= w.sum()
    np.testing.assert_allclose(votes, [w[2], w[0] + w[1], 0.0], atol=1e-6)
    # Confident zero-shot keeps zero-shot; threshold 1.0 takes the votes.
    confident = KnnClip(KnnClipConfig(k=3, threshold=0.5)).predict(torch.eye(4)[:1], mem)
    np.testing.assert_allclose(confident.numpy(), ZeroShot().predict(torch.eye(4)[:1], mem).numpy())
    votes_only = KnnClip(KnnClipConfig(k=3, temperature=0.5, threshold=1.0)).predict(q, mem)
    np.testing.assert_allclose(votes_only[0].numpy(), votes, atol=1e-6)


def test_freeda_combines_local_prototypes_with_the_global_text_term():
    mem = _memory()
    q = F.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    protos, _ = mem.prototypes()
    text = filled_text(mem)
    g = F.normalize(q.mean(0), dim=0)
    score = 0.3 * q @ protos.T + 0.7 * (g @ text.T)[None]
    expected = torch.softmax(100 * score, dim=1)
    got = Freeda(FreedaConfig(alpha=0.3)).predict(q, mem)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def test_linear_probe_matches_torch_adamw():
    gen = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(12, 5, generator=gen), dim=1)
    y = torch.arange(12) % 3
    cfg = LinearProbeConfig(steps=25, lr=0.05, weight_decay=0.01, seed=4)
    w, b = train_linear_probe(x, y, 3, cfg)
    # Reference: autograd gradients + torch's own AdamW update (its functional form, which avoids
    # the slow first construction of torch.optim.AdamW), from the same start.
    from torch.optim.adamw import adamw
    start = (torch.rand(3, 6, generator=torch.Generator().manual_seed(4)) * 2 - 1) / 5 ** 0.5
    ref_w = start[:, :5].clone().requires_grad_()
    ref_b = torch.zeros(3, requires_grad=True)
    params = [ref_w, ref_b]
    avg, avg_sq, steps = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params], \
        [torch.tensor(0.0), torch.tensor(0.0)]
    for _ in range(cfg.steps):
        loss = F.cross_entropy(x @ ref_w.T + ref_b, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            adamw(params, list(grads), avg, avg_sq, [], steps, amsgrad=False, beta1=0.9, beta2=0.999,
                  lr=cfg.lr, weight_decay=cfg.weight_decay, eps=1e-8, maximize=False, foreach=False,
                  capturable=False, differentiable=False, fused=False, grad_scale=None,
                  found_inf=None, has_complex=False)
    np.testing.assert_allclose(w.numpy(), ref_w.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(b.numpy(), ref_b.detach().numpy(), atol=1e-5)


def test_method_registry():
    assert build_method("rns-k16").describe()["adapter"]["k"] == 16
    assert build_method("rns-no-text").describe()["adapter"]["use_text"] is False
    assert build_method("rns-random").describe()["adapter"]["retrieval"] == "random"
    assert build_method("rns-single-lambda").describe()["adapter"]["lambdas"] == (0.8,)
    with pytest.raises(ValueError, match="unknown method"):
        build_method("segformer")
