"""Exemplar validation and the label aggregation of RNS eq. 2, against a plain loop over pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _support_fakes import FakeBackbone, random_image
from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar


def aggregate_by_pixel_loop(dense_feats: np.ndarray, labels: np.ndarray, patch: int) -> dict[int, np.ndarray]:
    """v_c = normalise(sum_j S_jc x_j), S_jc = (#pixels of c in patch j) / (#pixels of c), pixel by pixel."""
    totals: dict[int, int] = {}
    for y in range(labels.shape[0]):
        for x in range(labels.shape[1]):
            c = int(labels[y, x])
            if c:
                totals[c] = totals.get(c, 0) + 1
    sums = {c: np.zeros(dense_feats.shape[-1]) for c in totals}
    for y in range(labels.shape[0]):
        for x in range(labels.shape[1]):
            c = int(labels[y, x])
            if c:
                sums[c] += dense_feats[y // patch, x // patch] / totals[c]
    return {c: v / np.linalg.norm(v) for c, v in sums.items()}


def test_encode_exemplar_matches_pixel_loop():
    rng = np.random.default_rng(0)
    image = random_image(rng, 19, 22)  # not a multiple of the patch size: padding is ignored
    labels = np.zeros((19, 22), dtype=np.int32)
    labels[2:9, 3:17] = 7
    labels[10:19, 0:5] = 3
    labels[rng.random((19, 22)) < 0.1] = 12  # scattered pixels across many patches
    backbone = FakeBackbone(dim=16, patch_size=4)
    feats, class_ids = encode_exemplar(backbone, Exemplar(image, labels))
    dense = backbone.encode_image(image, support=True).features.numpy()
    expected = aggregate_by_pixel_loop(dense, labels, 4)
    assert class_ids == sorted(expected)
    assert feats.dtype == torch.float32 and feats.shape == (3, 16)
    for row, c in enumerate(class_ids):
        np.testing.assert_allclose(feats[row].numpy(), expected[c], atol=1e-5)
    np.testing.assert_allclose(feats.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_from_mask_and_class_ids():
    rng = np.random.default_rng(1)
    image = random_image(rng, 8, 8)
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[1:4, 2:6] = 255
    ex = Exemplar.from_mask(image, mask, 5)
    assert ex.class_ids() == [5]
    assert set(np.unique(ex.labels)) == {0, 5}
    assert int((ex.labels == 5).sum()) == 12
    ex2 = Exemplar.from_mask(image, mask.astype(bool), 2)
    np.testing.assert_array_equal(ex2.labels == 2, mask > 0)


def test_exemplar_is_an_immutable_copy():
    rng = np.random.default_rng(2)
    image = random_image(rng, 6, 6)
    labels = np.ones((6, 6), dtype=np.int64)
    ex = Exemplar(image, labels)
    labels[:] = 9
    image[:] = 0
    assert ex.class_ids() == [1] and ex.image.any()
    with pytest.raises(ValueError):
        ex.labels[0, 0] = 4


@pytest.mark.parametrize("image, labels, match", [
    (np.zeros((6, 6, 3), np.float32), np.ones((6, 6), np.int32), "uint8"),
    (np.zeros((6, 6), np.uint8), np.ones((6, 6), np.int32), r"\(H, W, 3\)"),
    (np.zeros((6, 6, 4), np.uint8), np.ones((6, 6), np.int32), r"\(H, W, 3\)"),
    (np.zeros((6, 6, 3), np.uint8), np.ones((6, 5), np.int32), "differ in size"),
    (np.zeros((6, 6, 3), np.uint8), np.zeros((6, 6), np.int32), "no annotated pixel"),
    (np.zeros((6, 6, 3), np.uint8), -np.ones((6, 6), np.int32), "negative"),
    (np.zeros((6, 6, 3), np.uint8), np.ones((6, 6), np.float32), "integer"),
    (np.zeros((6, 6, 3), np.uint8), np.ones((6, 6), bool), "from_mask"),
    (np.zeros((6, 6, 3), np.uint8), np.ones((6, 6, 1), np.int32), r"\(H, W\)"),
])
def test_bad_exemplars_refused(image, labels, match):
    with pytest.raises(ValueError, match=match):
        Exemplar(image, labels)


@pytest.mark.parametrize("mask, class_id, match", [
    (np.zeros((6, 6), np.uint8), 1, "empty"),
    (np.ones((6, 6), np.uint8), 0, "class_id"),
    (np.ones((6, 6), np.uint8), True, "class_id"),
    (np.ones((6, 6, 2), np.uint8), 1, r"\(H, W\)"),
    (np.ones((6, 5), np.uint8), 1, "differ in size"),
    (np.ones((6, 6), np.float32), 1, "bool or integer"),
])
def test_bad_masks_refused(mask, class_id, match):
    with pytest.raises(ValueError, match=match):
        Exemplar.from_mask(np.zeros((6, 6, 3), np.uint8), mask, class_id)


def test_sparse_class_ids_are_compacted():
    # ids far apart must not create a (patches x max_id) pooling matrix or spurious classes
    rng = np.random.default_rng(3)
    image = random_image(rng, 8, 8)
    labels = np.zeros((8, 8), np.int64)
    labels[:4] = 1
    labels[4:] = 1_000_000
    feats, ids = encode_exemplar(FakeBackbone(dim=8), Exemplar(image, labels))
    assert ids == [1, 1_000_000] and feats.shape == (2, 8)
