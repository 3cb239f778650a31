"""Area-weighted segment pooling (eq. 2 / eq. 13) and feature fusion (eqs. 4-5), checked by hand."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.memory.fusion import DEFAULT_LAMBDAS, fuse_features
from rns_ros.core.regions.pooling import IGNORE, patch_segment_counts, pool_segments, to_feature_grid


def dense_of(h, w, d=5, image_size=None, resized=None, p=4, seed=0):
    feats = F.normalize(torch.randn(h, w, d, generator=torch.Generator().manual_seed(seed)), dim=-1)
    resized = resized or (h * p, w * p)
    return DenseFeatures(feats, image_size or resized, resized, p)


def test_dense_features_geometry():
    dense = dense_of(3, 5, p=16, resized=(40, 70), image_size=(20, 35))
    assert dense.grid_size == (3, 5) and dense.padded_size == (48, 80)
    flat = dense.flat()
    assert flat.shape == (15, 5)
    torch.testing.assert_close(flat[1 * 5 + 2], dense.features[1, 2])  # row-major over the grid


def test_to_feature_grid_nearest_resize_and_ignore_padding():
    seg = np.arange(6 * 10).reshape(6, 10) % 7
    dense = dense_of(3, 5, p=4, resized=(9, 17), image_size=(6, 10))  # padded 12 x 20
    grid = to_feature_grid(seg, dense)
    assert grid.shape == (12, 20) and grid.dtype == torch.int64
    # nearest-exact by hand: source index = floor((dst + 0.5) * in / out)
    rows = np.floor((np.arange(9) + 0.5) * 6 / 9).astype(int)
    cols = np.floor((np.arange(17) + 0.5) * 10 / 17).astype(int)
    np.testing.assert_array_equal(grid[:9, :17].numpy(), seg[rows][:, cols])
    assert bool((grid[9:] == IGNORE).all()) and bool((grid[:, 17:] == IGNORE).all())
    same = dense_of(2, 3, p=4, resized=(6, 10), image_size=(6, 10))  # no resize: copied as is
    np.testing.assert_array_equal(to_feature_grid(seg, same)[:6, :10].numpy(), seg)
    with pytest.raises(ValueError, match="image size"):
        to_feature_grid(seg[:5], dense)
    with pytest.raises(ValueError, match="integer"):
        to_feature_grid(seg.astype(np.float32), dense)


def test_patch_segment_counts_by_pixel_loop():
    rng = np.random.default_rng(1)
    grid = rng.integers(-1, 4, (8, 12))
    counts = patch_segment_counts(torch.from_numpy(grid), (2, 3), 4, 4)
    expect = np.zeros((6, 4))
    for y in range(8):
        for x in range(12):
            if grid[y, x] >= 0:
                expect[(y // 4) * 3 + x // 4, grid[y, x]] += 1
    np.testing.assert_array_equal(counts.numpy(), expect)


def test_pool_segments_is_the_area_weighted_mean():
    rng = np.random.default_rng(2)
    dense = dense_of(3, 4, d=6, p=4, seed=3)
    grid = rng.integers(-1, 5, (12, 16))
    grid[grid == 3] = 4  # segment 3 absent: must be left out
    ids, pooled = pool_segments(dense, torch.from_numpy(grid), num_segments=5)
    assert ids.tolist() == [0, 1, 2, 4]
    feats = dense.features.numpy().astype(np.float64)
    for row, s in enumerate(ids.tolist()):
        ys, xs = np.nonzero(grid == s)
        # S_js = (pixels of s in patch j) / (pixels of s): a plain mean over the segment's pixels
        v = feats[ys // 4, xs // 4].mean(0)
        np.testing.assert_allclose(pooled[row].numpy(), v / np.linalg.norm(v), atol=1e-5)


def test_pool_segments_of_one_full_patch_returns_that_patch():
    dense = dense_of(2, 2, p=4, seed=4)
    grid = torch.full((8, 8), IGNORE)
    grid[4:8, 0:4] = 0  # exactly patch (1, 0)
    ids, pooled = pool_segments(dense, grid)
    assert ids.tolist() == [0]
    torch.testing.assert_close(pooled[0], dense.features[1, 0])
    ids, pooled = pool_segments(dense, torch.full((8, 8), IGNORE), num_segments=0)
    assert ids.numel() == 0 and pooled.shape == (0, 5)


def test_fuse_features_by_hand():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[0.0, 1.0], [0.6, 0.8]])
    fused = fuse_features(v, t, (0.8, 0.0, 1.0))
    assert fused.shape == (2, 3, 2)
    # lambda weights the visual part: 0.8 * [1, 0] + 0.2 * [0, 1] = [0.8, 0.2]
    n = math.hypot(0.8, 0.2)
    torch.testing.assert_close(fused[0, 0], torch.tensor([0.8 / n, 0.2 / n]))
    torch.testing.assert_close(fused[:, 1], t)  # lambda 0 = pure text
    torch.testing.assert_close(fused[:, 2], v)  # lambda 1 = pure visual
    mix = torch.tensor([0.8 * 0.0 + 0.2 * 0.6, 0.8 * 1.0 + 0.2 * 0.8])
    torch.testing.assert_close(fused[1, 0], mix / mix.norm())
    assert DEFAULT_LAMBDAS == (0.9, 0.8, 0.6, 0.4, 0.2, 0.0)
    assert fuse_features(v, t).shape == (2, 6, 2)


def test_fuse_features_refusals():
    v = torch.ones(2, 3)
    with pytest.raises(ValueError):
        fuse_features(v, torch.ones(3, 3))
    with pytest.raises(ValueError):
        fuse_features(v, v, ())
    with pytest.raises(ValueError):
        fuse_features(v, v, (1.2,))
