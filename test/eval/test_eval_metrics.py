"""Dataset-level mIoU and panoptic quality against hand-computed examples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rns_ros.eval.metrics import ConfusionMatrix, PanopticQuality

GT1 = np.array([[0, 0, 1], [1, 255, 2]])
PRED1 = np.array([[0, 1, 1], [1, 0, -1]])  # -1: no prediction
GT2 = np.array([[2, 2], [0, 255]])
PRED2 = np.array([[2, 0], [0, 2]])


def test_miou_is_summed_over_the_dataset_hand_computed():
    cm = ConfusionMatrix(4)  # class 3 occurs nowhere: left out of the mean
    cm.update(PRED1, GT1)
    cm.update(PRED2, GT2)
    # class 0: I = 2 ((0,0) of image 1, (1,0) of image 2); GT pixels 3, predicted (non-ignored) 3 -> U = 4
    # class 1: I = 2; GT 2, predicted 3 -> U = 3
    # class 2: I = 1; GT 3 (one of them unpredicted), predicted 1 (the other is on an ignored pixel) -> U = 3
    iou = cm.per_class_iou()
    np.testing.assert_allclose(iou[:3], [2 / 4, 2 / 3, 1 / 3])
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx((2 / 4 + 2 / 3 + 1 / 3) / 3)
    assert cm.miou([1, 2]) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert cm.pixel_accuracy() == pytest.approx(5 / 8)
    # Not the mean of per-image mIoUs: image 1 alone gives (1/2 + 2/3 + 0) / 3.
    single = ConfusionMatrix(4)
    single.update(PRED1, GT1)
    assert single.miou() == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)


def test_merge_equals_one_accumulator():
    a, b, both = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED1, GT1)
    b.update(PRED2, GT2)
    both.update(PRED1, GT1)
    both.update(PRED2, GT2)
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, both.matrix)


def test_confusion_refuses_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ground truth"):
        cm.update(np.zeros((1, 1)), np.full((1, 1), 7))
    with pytest.raises(ValueError, match="prediction"):
        cm.update(np.full((1, 1), 3), np.zeros((1, 1)))
    assert cm.matrix.sum() == 0


def test_panoptic_quality_hand_computed():
    pq = PanopticQuality(3)
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[:, 2:] = 1  # segment 0 = class 0 (left half), segment 1 = class 1 (right half)
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[:, :2] = 1  # exact match of the class-0 segment: IoU 1
    pred[:3, 2:] = 2  # 6 of the 8 class-1 pixels: IoU 0.75 -> TP
    pred[3, 2:] = 3  # the other 2: IoU 0.25 -> FP
    pq.update(pred, {1: 0, 2: 1, 3: 1}, gt, {0: 0, 1: 1}, np.zeros((4, 4), bool))
    # A second image: a prediction lying mostly on void pixels is not a false positive.
    gt2 = np.zeros((4, 4), dtype=np.int64)
    void = np.zeros((4, 4), bool)
    void[0] = True
    pred2 = np.where(void, 5, 4)
    pred2[1, 0] = 5  # segment 5: 4 void + 1 class-0 pixel, predicted class 1
    pq.update(pred2, {4: 0, 5: 1}, gt2, {0: 0}, void)
    # class 0: TP 2 (IoU 1 and 11/12) ; class 1: TP 1 (0.75), FP 1.
    s = pq.summary()
    pq0 = (1 + 11 / 12) / 2
    pq1 = 0.75 / (1 + 0.5)
    assert s["pq"] == pytest.approx((pq0 + pq1) / 2)
    assert s["sq"] == pytest.approx(((1 + 11 / 12) / 2 + 0.75) / 2)
    assert s["rq"] == pytest.approx((1 + 1 / 1.5) / 2)
