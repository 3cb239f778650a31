"""Prompt-to-mask (box, points, scribble, mask) on the TEST-ONLY tiny SAM 2: prompt validation,
the shapes and types each prompt returns, and what reaches SAM 2's predictor.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _tiny_sam2 import TINY
from rns_ros.core.regions.prompts import PromptMasker, sample_stroke_points


def test_every_prompt_needs_an_image_first(proposer):
    m = PromptMasker(proposer.model, config=TINY)
    for call in (lambda: m.from_box((0, 0, 4, 4)), lambda: m.from_points([[1, 1]], [1]),
                 lambda: m.from_scribble(np.ones((4, 4), bool)),
                 lambda: m.from_mask(np.ones((4, 4), bool))):
        with pytest.raises(RuntimeError, match="set_image"):
            call()


def test_each_prompt_type_returns_an_image_sized_bool_mask(masker, image):
    h, w = image.shape[:2]
    stroke = np.zeros((h, w), bool)
    stroke[40:43, 20:90] = True
    results = [masker.from_box((10.0, 12.0, 70.0, 60.0)),
               masker.from_points(np.array([[30.5, 40.5]]), np.array([1])),
               masker.from_points([[30, 40], [100, 80]], [1, 0]),
               masker.from_scribble(stroke),
               masker.from_scribble([np.array([[5.0, 5.0], [60.0, 50.0], [90.0, 20.0]])]),
               masker.from_mask(stroke.astype(np.uint8))]
    for mask in results:
        assert mask.shape == (h, w) and mask.dtype == np.bool_
    assert np.array_equal(results[-1], stroke)


def test_single_point_picks_the_best_of_three_by_predicted_iou(masker, monkeypatch):
    h, w = masker.image_size
    three = np.zeros((3, h, w), np.float32) - 1
    for k in range(3):
        three[k, k] = 1.0  # mask k is row k
    seen = []

    def fake_predict(**kw):
        seen.append(kw["multimask_output"])
        return three, np.array([0.2, 0.9, 0.5], np.float32), np.zeros((3, 64, 64), np.float32)

    monkeypatch.setattr(masker._predictor, "predict", fake_predict)
    mask = masker.from_points([[3, 3]], [1])
    assert mask[1].all() and mask.sum() == w
    masker.from_points([[3, 3], [9, 9]], [1, 1])
    masker.from_box((0, 0, 5, 5))
    assert seen == [True, False, False]


def test_scribble_refine_feeds_the_first_masks_logits_back(proposer, image, monkeypatch):
    m = PromptMasker(proposer.model, config=dataclasses.replace(TINY, scribble_refine=True))
    m.set_image(image)
    seen = []
    real = m._predictor.predict

    def spy(**kw):
        seen.append(kw.get("mask_input"))
        return real(**kw)

    monkeypatch.setattr(m._predictor, "predict", spy)
    out = m.from_scribble([[[10, 10], [60, 30]]])
    assert out.shape == image.shape[:2]
    assert seen[0] is None and seen[1].shape == (1, 64, 64)


@pytest.mark.parametrize("box", [(-1, 0, 10, 10), (0, 0, 129, 10), (0, 0, 10, 97), (5, 5, 5, 9),
                                 (10, 5, 4, 9), (0, 0, 10), (0, 0, float("nan"), 4)])
def test_bad_boxes_are_refused(masker, box):
    with pytest.raises(ValueError, match="box"):
        masker.from_box(box)


@pytest.mark.parametrize("points, labels, match", [
    ([[128, 5]], [1], "outside"), ([[-0.5, 5]], [1], "outside"), ([[5, 96]], [1], "outside"),
    ([[5, 5], [6, 6]], [1], "match points"), ([[5, 5]], [0], "positive"),
    ([[5, 5]], [2], "labels"), (np.zeros((0, 2)), [], "P >= 1"), ([[1, 2, 3]], [1], "shape"),
    ([[np.inf, 1]], [1], "NaN"),
])
def test_bad_points_are_refused(masker, points, labels, match):
    with pytest.raises(ValueError, match=match):
        masker.from_points(points, labels)


@pytest.mark.parametrize("scribble, match", [
    (np.zeros((96, 128), bool), "empty"), (np.ones((10, 10), bool), "expected the image size"),
    ([], "non-empty"), ([np.array([[0, 0], [200, 3]])], "outside"),
    ([np.zeros((0, 2))], "K >= 1"), (np.array([[1.0, 2.0], [3.0, 4.0]]), "wrapped in a list"),
])
def test_bad_scribbles_are_refused(masker, scribble, match):
    with pytest.raises(ValueError, match=match):
        masker.from_scribble(scribble)


@pytest.mark.parametrize("mask, match", [
    (np.zeros((96, 128), bool), "empty"), (np.ones((96, 127), bool), "image size"),
    (np.ones((96, 128), np.float32), "bool or integer"),
])
def test_bad_masks_are_refused(masker, mask, match):
    with pytest.raises(ValueError, match=match):
        masker.from_mask(mask)


def test_a_refused_image_keeps_the_previous_one(masker, image):
    with pytest.raises(ValueError):
        masker.set_image(np.zeros((5, 5), np.uint8))
    assert masker.image_size == image.shape[:2]
    assert masker.from_points([[5, 5]], [1]).shape == image.shape[:2]


def test_masker_builds_its_model_lazily_from_its_config(proposer, monkeypatch):
    built = []

    def fake_build(model, checkpoint, device, random_weights):
        built.append((model, checkpoint, device, random_weights))
        return proposer.model

    monkeypatch.setattr("rns_ros.core.regions.sam2_models.build_sam2_model", fake_build)
    m = PromptMasker(TINY)
    assert built == []
    m.set_image(np.zeros((20, 30, 3), np.uint8))
    m.set_image(np.zeros((20, 30, 3), np.uint8))
    assert built == [("test-tiny", None, "cpu", False)]
    assert m.from_box((0, 0, 30, 20)).shape == (20, 30)
    with pytest.raises(ValueError):
        PromptMasker("test-tiny")


def test_bf16_autocast_runs_on_cpu(proposer, image):
    m = PromptMasker(proposer.model, config=dataclasses.replace(TINY, precision="bf16"))
    m.set_image(image)
    assert m.from_box((0, 0, 50, 50)).dtype == np.bool_


# ---------------------------------------------------------------- scribble sampling

def test_stroke_points_reach_both_ends_then_the_middle():
    line = np.zeros((5, 21), bool)
    line[2, :] = True
    pts = sample_stroke_points(line, 3)
    assert pts.tolist() == [[0.5, 2.5], [20.5, 2.5], [10.5, 2.5]]
    assert len(sample_stroke_points(line, 100)) == 21  # no more points than stroke pixels


def test_polylines_rasterise_through_every_pixel_they_cross(masker):
    strokes = masker._scribble_to_mask([[[0.5, 0.5], [9.5, 0.5]], [[20.2, 30.7]]], (96, 128))
    expected = np.zeros((96, 128), bool)
    expected[0, 0:10] = True
    expected[30, 20] = True
    assert np.array_equal(strokes, expected)
    diagonal = masker._scribble_to_mask([[[0.0, 0.0], [10.0, 10.0]]], (96, 128))
    assert all(diagonal[i, i] for i in range(10))
