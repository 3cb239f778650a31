"""Region proposals (rns-method.md section 5), on the TEST-ONLY tiny SAM 2.

The tiny model has random weights, so its masks mean nothing: tests check the partition rule and
the pooling against independent computations, the settings that reach sam2's generator (and that
its filters do what the config says, with the decoder's answers replaced by known ones), and the
shapes and types the proposer returns.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from _tiny_sam2 import TINY
from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.regions.pooling import pool_segments, to_feature_grid
from rns_ros.core.regions.prompts import PromptMasker
from rns_ros.core.regions.proposals import ProposalConfig, RegionProposer, masks_to_partition, \
    masks_to_partition_tensor


# ---------------------------------------------------------------- partition rule

def reference_partition(masks: np.ndarray) -> np.ndarray:
    """Pixel by pixel: the covering mask of largest area wins (ties: the later one); survivors are
    numbered in input order; uncovered pixels get the next id."""
    r, h, w = masks.shape
    areas = masks.reshape(r, -1).sum(1)
    owner = np.full((h, w), -1)
    for y in range(h):
        for x in range(w):
            covering = [i for i in range(r) if masks[i, y, x]]
            if covering:
                owner[y, x] = max(covering, key=lambda i: (areas[i], i))
    survivors = sorted({int(v) for v in owner.ravel() if v >= 0})
    new_id = {old: new for new, old in enumerate(survivors)}
    return np.array([[new_id.get(int(v), len(survivors)) for v in row] for row in owner])


def test_partition_by_hand_larger_masks_overwrite_smaller_and_the_rest_is_unassigned():
    a = np.zeros((4, 6), bool); a[0:2, 0:3] = True  # area 6
    b = np.zeros((4, 6), bool); b[1:3, 1:5] = True  # area 8: wins the overlap with a
    c = np.zeros((4, 6), bool); c[0:2, 4:6] = True  # area 4: loses (0..1, 4) to b
    expected = np.array([[0, 0, 0, 3, 2, 2],
                         [0, 1, 1, 1, 1, 2],
                         [3, 1, 1, 1, 1, 3],
                         [3, 3, 3, 3, 3, 3]])
    assert np.array_equal(masks_to_partition(np.stack([a, b, c])), expected)


def test_partition_ties_go_to_the_later_mask_and_covered_masks_disappear():
    a = np.zeros((3, 4), bool); a[:, 0:2] = True  # area 6
    b = np.zeros((3, 4), bool); b[:, 1:3] = True  # area 6, later: wins column 1
    hidden = np.zeros((3, 4), bool); hidden[0, 2] = True  # inside b, smaller: painted over
    empty = np.zeros((3, 4), bool)
    full_cover = np.zeros((3, 4), bool); full_cover[:, 3] = True
    out = masks_to_partition(np.stack([hidden, a, empty, b, full_cover]))
    expected = np.array([[0, 1, 1, 2]] * 3)  # a -> 0, b -> 1, full_cover -> 2; no unassigned
    assert np.array_equal(out, expected)
    assert out.dtype == np.int64


def random_masks(seed: int, h: int = 11, w: int = 13, most: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = int(rng.integers(1, most))
    masks = np.zeros((r, h, w), bool)
    for i in range(r):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        masks[i, y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = True
    if seed % 2:
        masks[r - 1] = masks[0]  # an exact duplicate: a tie
    return masks


@pytest.mark.parametrize("seed", range(6))
def test_partition_matches_the_pixel_loop_on_random_overlapping_masks(seed):
    masks = random_masks(seed)
    out = masks_to_partition(masks)
    assert np.array_equal(out, reference_partition(masks))
    assert set(np.unique(out)) == set(range(out.max() + 1))  # ids contiguous from 0


@pytest.mark.parametrize("seed", range(12))
def test_partition_from_tensors_equals_the_numpy_partition(seed, monkeypatch):
    """The device path (issue 27) against the numpy one: small masks as above, and many masks
    (over 64: several painting chunks) with ties, empty and fully covered masks."""
    import rns_ros.core.regions.proposals as proposals

    if seed >= 6:
        monkeypatch.setattr(proposals, "_PAINT_CHUNK", 5)
    masks = random_masks(seed, 17, 23, most=80 if seed % 3 == 0 else 7)
    if len(masks) > 3:
        masks[2] = False  # an empty mask
        masks[3] = masks[1] & ~masks[0]  # may be fully painted over
    got = masks_to_partition_tensor(torch.from_numpy(masks))
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), masks_to_partition(masks))


def test_partition_from_tensors_without_masks_and_refusals():
    assert torch.equal(masks_to_partition_tensor(torch.zeros(0, 3, 5, dtype=torch.bool)),
                       torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="bool"):
        masks_to_partition_tensor(torch.zeros(2, 3, 4, dtype=torch.uint8))


def test_partition_without_masks_is_one_unassigned_region():
    assert np.array_equal(masks_to_partition(np.zeros((0, 3, 5), bool)), np.zeros((3, 5)))


@pytest.mark.parametrize("bad", [np.zeros((3, 4), bool), np.zeros((2, 3, 4), np.uint8)])
def test_partition_refuses_wrong_shape_or_dtype(bad):
    with pytest.raises(ValueError):
        masks_to_partition(bad)


def test_region_embeddings_are_area_weighted_patch_means_eq13():
    rng = np.random.default_rng(3)
    patch, grid = 4, (3, 5)
    size = (10, 18)  # unpadded; the padded grid is 12 x 20
    feats = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(*grid, 8))).float(), dim=-1)
    dense = DenseFeatures(features=feats, image_size=size, resized_size=size, patch_size=patch)
    masks = np.zeros((3, *size), bool)
    masks[0, 0:6, 0:9] = True
    masks[1, 4:10, 5:16] = True
    masks[2, 1:3, 14:18] = True
    partition = masks_to_partition(masks)
    ids, pooled = pool_segments(dense, to_feature_grid(partition, dense))
    assert ids.tolist() == list(range(partition.max() + 1))
    for k, region in enumerate(ids.tolist()):
        total = torch.zeros(8)
        ys, xs = np.nonzero(partition == region)
        for y, x in zip(ys, xs):
            total += feats[y // patch, x // patch] / len(ys)
        assert torch.allclose(pooled[k], total / total.norm(), atol=1e-5)


# ---------------------------------------------------------------- config and generator

def test_defaults_are_the_paper_settings():
    c = ProposalConfig()
    assert (c.points_per_side, c.pred_iou_thresh, c.stability_score_thresh, c.box_nms_thresh,
            c.multimask_output, c.min_mask_region_area) == (32, 0.4, 0.4, 0.7, False, 0)
    assert c.model == "sam2.1-hiera-large"
    assert c.points_per_batch == 0 and c.batch_size() == 64  # by device: 64 on a CPU
    assert dataclasses.replace(c, device="cuda:1").batch_size() == 512  # the paper's, on a GPU
    assert dataclasses.replace(c, device="cuda", points_per_batch=100).generator_settings()["points_per_batch"] == 100


@pytest.mark.parametrize("change", [
    dict(points_per_side=0), dict(points_per_batch=-1), dict(pred_iou_thresh=1.5),
    dict(stability_score_thresh=-0.1), dict(box_nms_thresh="0.7"), dict(precision="int8"),
    dict(model="no-such-sam"), dict(min_mask_region_area=-1), dict(scribble_points=0),
    dict(points_per_side=True),
])
def test_config_refuses_bad_values(change):
    with pytest.raises(ValueError):
        ProposalConfig(**change)


def test_generator_receives_exactly_the_configured_settings(proposer):
    config = dataclasses.replace(TINY, points_per_side=3, points_per_batch=5, pred_iou_thresh=0.25,
                                 stability_score_thresh=0.6, box_nms_thresh=0.55,
                                 stability_score_offset=0.5)
    gen = RegionProposer(config, model=proposer.model).generator
    assert len(gen.point_grids) == 1 and gen.point_grids[0].shape == (9, 2)
    assert (gen.points_per_batch, gen.pred_iou_thresh, gen.stability_score_thresh,
            gen.box_nms_thresh, gen.stability_score_offset) == (5, 0.25, 0.6, 0.55, 0.5)
    assert (gen.multimask_output, gen.min_mask_region_area, gen.crop_n_layers, gen.use_m2m) == \
        (False, 0, 0, False)
    assert gen.predictor._bb_feat_sizes == [(64, 64), (32, 32), (16, 16)]


def test_generator_filters_by_predicted_iou_and_stability_as_configured(proposer, monkeypatch):
    """Replace the decoder's answers by known ones: one square per grid point with a chosen
    predicted IoU and stability score (core logit 4 on area a, rim logit 0.5 on area b, so the
    stability score at offset 1 is a / (a + b)); check which masks survive."""
    side, cell = 4, 16
    config = dataclasses.replace(TINY, points_per_side=side, points_per_batch=5,
                                 pred_iou_thresh=0.5, stability_score_thresh=0.5)
    gen = RegionProposer(config, model=proposer.model).generator
    ious = np.linspace(0.31, 0.91, side * side)[np.random.default_rng(1).permutation(side * side)]
    rims = np.random.default_rng(2).integers(0, 5, side * side)  # rim width: 0 (stable) .. 4
    calls = []

    def fake_predict(points, labels, multimask_output, return_logits):
        calls.append((len(points), multimask_output))
        n = len(points)
        logits = torch.full((n, 1, side * cell, side * cell), -10.0)
        iou = torch.zeros(n, 1)
        for j, p in enumerate(points[:, 0].tolist()):  # model-frame coordinates in [0, 256)
            col, row = int(p[0] / 256 * side), int(p[1] / 256 * side)
            k = row * side + col
            y0, x0 = row * cell + 5, col * cell + 5
            logits[j, 0, y0 - rims[k]:y0 + 6 + rims[k], x0 - rims[k]:x0 + 6 + rims[k]] = 0.5
            logits[j, 0, y0:y0 + 6, x0:x0 + 6] = 4.0
            iou[j, 0] = float(ious[k])
        return logits, iou, logits

    monkeypatch.setattr(gen.predictor, "_predict", fake_predict)
    image = np.zeros((side * cell, side * cell, 3), np.uint8)
    records = gen.generate(image)
    stability = 36 / (6 + 2 * rims) ** 2
    expected = {k for k in range(side * side) if ious[k] > 0.5 and stability[k] >= 0.5}
    got = {int(r["point_coords"][0][1] // cell) * side + int(r["point_coords"][0][0] // cell)
           for r in records}
    assert got == expected and 0 < len(expected) < side * side
    assert [c[0] for c in calls] == [5, 5, 5, 1] and not any(c[1] for c in calls)


@pytest.mark.parametrize("multimask, per_point", [(False, 1), (True, 3)])
def test_one_mask_per_point_when_nothing_is_filtered(proposer, image, multimask, per_point):
    config = dataclasses.replace(TINY, points_per_side=2, pred_iou_thresh=0.0,
                                 stability_score_thresh=0.0, box_nms_thresh=1.0,
                                 multimask_output=multimask)
    masks = RegionProposer(config, model=proposer.model).masks(image[:48, :64])
    assert masks.shape == (4 * per_point, 48, 64) and masks.dtype == np.bool_


def test_masks_and_partition_have_image_shape(proposer, image):
    masks = proposer.masks(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == image.shape[:2]
    part = proposer.partition(image)
    assert part.shape == image.shape[:2] and part.dtype == np.int64
    assert np.array_equal(part, masks_to_partition(masks))


def test_mask_tensors_are_the_generators_masks_without_the_host_round_trip(proposer, image):
    """sam2's generate() (run lengths through the host) and mask_tensor() give the same masks in
    the same order (sam2 1.1.0, automatic_mask_generator.py: _process_batch, _process_crop), with
    and without filtering; the partitions built from them agree."""
    lenient = RegionProposer(dataclasses.replace(TINY, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                                                 box_nms_thresh=1.0), model=proposer.model)
    for source in (proposer, lenient):
        masks = source.masks(image)
        tensor = source.mask_tensor(image)
        assert tensor.dtype == torch.bool and tensor.device == torch.device("cpu")
        assert np.array_equal(tensor.numpy(), masks)
        partition = source.partition_tensor(image)
        assert not partition.is_inference() and np.array_equal(partition.numpy(), source.partition(image))
    assert len(lenient.masks(image)) > 1


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32), [[0, 0, 0]]])
def test_proposer_refuses_bad_images(proposer, bad):
    with pytest.raises(ValueError, match="image"):
        proposer.masks(bad)


# ---------------------------------------------------------------- prompting


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tiny_proposals_and_prompts_on_cuda(image):
    config = dataclasses.replace(TINY, device="cuda", pred_iou_thresh=0.0,
                                 stability_score_thresh=0.0, box_nms_thresh=1.0)
    proposer = RegionProposer(config)
    assert proposer.masks(image).shape == (16, *image.shape[:2])
    m = PromptMasker(proposer.model, config=config)
    m.set_image(image)
    assert m.from_points([[5, 5]], [1]).shape == image.shape[:2]
