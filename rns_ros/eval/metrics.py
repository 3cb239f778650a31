"""Dataset-level segmentation metrics.

mIoU is the paper's (and mmsegmentation's): intersection and union of each class are summed over
the whole evaluated set, IoU_c = I_c / U_c, and the mean runs over the classes whose union is not
empty. Pixels labelled IGNORE_INDEX count for nothing; predicted "no class" (-1) pixels count
against the ground-truth class.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rns_ros.eval.datasets.base import IGNORE_INDEX

NO_PREDICTION = -1


class ConfusionMatrix:
    """Accumulates a (C, C + 1) pixel confusion matrix: rows = ground truth, columns = prediction,
    the last column = pixels with no prediction."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, prediction: np.ndarray, ground_truth: np.ndarray) -> None:
        """`prediction`: (H, W) ints in [0, C) or NO_PREDICTION; `ground_truth`: (H, W) ints in
        [0, C) or IGNORE_INDEX."""
        pred = np.asarray(prediction).astype(np.int64).ravel()
        gt = np.asarray(ground_truth).astype(np.int64).ravel()
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {np.shape(prediction)} and ground truth "
                             f"{np.shape(ground_truth)} differ in shape")
        keep = gt != IGNORE_INDEX
        pred, gt = pred[keep], gt[keep]
        c = self.num_classes
        if gt.size and (gt.min() < 0 or gt.max() >= c):
            raise ValueError(f"ground truth has class indices outside 0..{c - 1} (and not {IGNORE_INDEX})")
        if pred.size and (pred.min() < NO_PREDICTION or pred.max() >= c):
            raise ValueError(f"prediction has class indices outside 0..{c - 1} (and not {NO_PREDICTION})")
        pred = np.where(pred == NO_PREDICTION, c, pred)
        self.matrix += np.bincount(gt * (c + 1) + pred, minlength=c * (c + 1)).reshape(c, c + 1)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def intersection_union(self) -> tuple[np.ndarray, np.ndarray]:
        """(C,) intersections and unions, summed over everything accumulated."""
        tp = np.diag(self.matrix[:, : self.num_classes]).astype(np.float64)
        gt_area = self.matrix.sum(axis=1)
        pred_area = self.matrix[:, : self.num_classes].sum(axis=0)
        return tp, gt_area + pred_area - tp

    def per_class_iou(self) -> np.ndarray:
        """(C,) IoU in [0, 1]; NaN where the class is in neither ground truth nor prediction."""
        inter, union = self.intersection_union()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, inter / np.maximum(union, 1), np.nan)

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over `classes` (default all) with a non-empty union; NaN if there is none."""
        iou = self.per_class_iou()
        if classes is not None:
            iou = iou[np.asarray(list(classes), dtype=np.int64)] if len(classes) else iou[:0]
        iou = iou[~np.isnan(iou)]
        return float(iou.mean()) if iou.size else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix[:, : self.num_classes]) / total) if total else float("nan")


class PanopticQuality:
    """Panoptic quality (Kirillov et al.) accumulated over a dataset, COCO panopticapi rules:
    a predicted and a ground-truth segment of the same class match when their IoU > 0.5 (void
    pixels excluded from the union); unmatched predictions that are more than half void are not
    false positives. PQ = sum of matched IoUs / (TP + FP/2 + FN/2) per class, averaged over the
    classes that occur (TP + FP + FN > 0)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.iou_sum = np.zeros(num_classes)
        self.tp = np.zeros(num_classes, dtype=np.int64)
        self.fp = np.zeros(num_classes, dtype=np.int64)
        self.fn = np.zeros(num_classes, dtype=np.int64)

    def update(self, pred_segments: np.ndarray, pred_classes: Mapping[int, int],
               gt_segments: np.ndarray, gt_classes: Mapping[int, int], void: np.ndarray) -> None:
        """`*_segments`: (H, W) int segment ids (ids missing from the class map = no segment);
        `*_classes`: segment id -> class index; `void`: (H, W) bool pixels that count for nothing."""
        pred = np.asarray(pred_segments).ravel()
        gt = np.asarray(gt_segments).ravel()
        void = np.asarray(void, dtype=bool).ravel()
        pred_ids = [int(s) for s in np.unique(pred) if int(s) in pred_classes]
        gt_ids = [int(s) for s in np.unique(gt[~void]) if int(s) in gt_classes]
        pred_area = {s: int(np.count_nonzero(pred == s)) for s in pred_ids}
        pred_void = {s: int(np.count_nonzero((pred == s) & void)) for s in pred_ids}
        gt_area = {g: int(np.count_nonzero((gt == g) & ~void)) for g in gt_ids}
        matched_pred: set[int] = set()
        matched_gt: set[int] = set()
        for g in gt_ids:
            in_g = (gt == g) & ~void
            for s, inter in zip(*np.unique(pred[in_g], return_counts=True)):
                s = int(s)
                if s not in pred_classes or pred_classes[s] != gt_classes[g]:
                    continue
                union = pred_area[s] - pred_void[s] + gt_area[g] - int(inter)
                iou = int(inter) / union if union else 0.0
                if iou > 0.5:
                    c = gt_classes[g]
                    self.tp[c] += 1
                    self.iou_sum[c] += iou
                    matched_pred.add(s)
                    matched_gt.add(g)
        for g in gt_ids:
            if g not in matched_gt:
                self.fn[gt_classes[g]] += 1
        for s in pred_ids:
            if s in matched_pred or pred_void[s] > 0.5 * pred_area[s]:
                continue
            self.fp[pred_classes[s]] += 1

    def summary(self) -> dict[str, float]:
        """{'pq', 'sq', 'rq'} in [0, 1], averaged over the classes that occur."""
        present = (self.tp + self.fp + self.fn) > 0
        if not present.any():
            return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan")}
        tp = self.tp[present].astype(np.float64)
        denom = tp + 0.5 * self.fp[present] + 0.5 * self.fn[present]
        sq = np.where(tp > 0, self.iou_sum[present] / np.maximum(tp, 1), 0.0)
        rq = tp / denom
        return {"pq": float((sq * rq).mean()), "sq": float(sq.mean()), "rq": float(rq.mean())}
