"""End to end through the runner with features whose answer is known: a backbone that maps each
painted class colour to its own orthonormal basis vector. RNS and every baseline must score what
the construction implies, and the oracle mode must reach its upper bound."""
from __future__ import annotations

import numpy as np
import pytest

from _eval_fakes import ColourBackbone, block_labels, write_camvid
from rns_ros.eval.datasets.classnames import CAMVID11
from rns_ros.eval.methods import KnnClipConfig, MethodOptions
from rns_ros.eval.runner import EvalConfig, run_evaluation
from rns_ros.eval.sampling import class_permutation

ALL_METHODS = ("zero-shot", "rns", "rns-no-relevance", "rns-single-lambda", "rns-no-text", "rns-no-pseudo", "rns-k1",
               "rns-random", "knn-clip", "freeda", "linear")
OPTIONS = MethodOptions()  # 700 steps: the method needs them to separate these classes exactly


def _dataset(root, block=4, offset=0, seed=0):
    """CamVid layout: 8 train and 3 test images of 4 x 6 class blocks. One block per image is
    ignored in the labels but still painted with its class, as real ignore pixels show something."""
    rng = np.random.default_rng(seed)
    maps, paints = {}, {}
    for split, n in (("train", 8), ("test", 3)):
        maps[split], paints[split] = [], []
        for _ in range(n):
            painted = block_labels(rng, 4, 6, block, len(CAMVID11), offset=offset)
            labels = painted.copy()
            labels[:block, :block] = 255
            maps[split].append(labels)
            paints[split].append(painted)
    write_camvid(root, maps, paints)
    return maps


def pixel_backbone(**kwargs):
    """Patch size 1: every pixel is a patch, so patch mode needs no upsampling and the expected
    score is exact (the upsampling geometry is tested on its own in test_eval_queries)."""
    return ColourBackbone(CAMVID11, patch_size=1, **kwargs)


def _run(tmp_path, backbone, proposer=None, out="out", **kwargs):
    config = EvalConfig(datasets=("camvid",), root=str(tmp_path / "camvid"), out=str(tmp_path / out),
                        progress=False, plots=False,
                        method_options=kwargs.pop("method_options", OPTIONS), **kwargs)
    return run_evaluation(config, backbone=backbone, proposer=proposer, log=lambda _: None)


def _miou(results, method, shots=1, setting="full"):
    [rec] = [r for r in results["records"] if r["method"] == method and r["shots"] == shots
             and r["setting"] == setting]
    return rec


def test_separable_features_and_right_names_give_every_method_a_perfect_score(tmp_path):
    _dataset(tmp_path / "camvid")
    results = _run(tmp_path, pixel_backbone(), methods=ALL_METHODS, shots=(1,))
    for method in ALL_METHODS:
        rec = _miou(results, method)
        assert rec["status"] == "ok", rec
        assert rec["miou"] == pytest.approx(100.0), (method, rec["per_class_iou"])
        assert method == "zero-shot" or rec["support"]["images_per_class"]["sky"] >= 1
    assert len(results["records"]) == len(ALL_METHODS)
    assert "warning" not in results


def _hand_zero_shot_with_car_and_fence_named_alike(test_maps) -> float:
    """Oracle regions are pure class vectors. 'car' and 'fence' share one text vector
    normalise(e_car + e_fence), so both regions tie between fence (index 7) and car (8) and the
    argmax takes the first: everything car or fence is predicted fence."""
    fence, car = CAMVID11.index("fence"), CAMVID11.index("car")
    gt = np.concatenate([m.ravel() for m in test_maps])
    gt = gt[gt != 255]
    pred = np.where(gt == car, fence, gt)
    ious = []
    for c in range(len(CAMVID11)):
        inter = np.sum((gt == c) & (pred == c))
        union = np.sum((gt == c) | (pred == c))
        if union:
            ious.append(inter / union)
    return 100 * float(np.mean(ious))


def test_oracle_mode_with_confusable_names(tmp_path):
    maps = _dataset(tmp_path / "camvid", block=8)  # blocks on the 8-px patch grid: pure regions
    backbone = ColourBackbone(CAMVID11, text_overrides={"car": ["car", "fence"], "fence": ["car", "fence"]})
    methods = ("zero-shot", "rns", "rns-no-text", "knn-clip", "freeda", "linear")
    results = _run(tmp_path, backbone, methods=methods, shots=(1,), mode="oracle",
                   method_options=MethodOptions(knn=KnnClipConfig(threshold=0.9)))
    expected_zs = _hand_zero_shot_with_car_and_fence_named_alike(maps["test"])
    assert expected_zs < 100
    assert _miou(results, "zero-shot")["miou"] == pytest.approx(expected_zs, abs=1e-3)
    # The visual support tells car from fence: every support-using method is perfect.
    for method in methods[1:]:
        rec = _miou(results, method)
        assert rec["miou"] == pytest.approx(100.0), (method, rec["per_class_iou"])
        assert rec["panoptic"]["pq"] == pytest.approx(100.0)  # GT segments classified right


def test_oracle_reaches_the_upper_bound_where_patches_straddle_class_edges(tmp_path):
    # Block edges 3 px off the 8-px patch grid: boundary patches mix two classes, so patch-mode
    # predictions get some edge pixels wrong; every 16-px block covers a pure patch, so the
    # ground-truth regions pool to their own class and the oracle is exact.
    _dataset(tmp_path / "camvid", block=16, offset=3)
    backbone = ColourBackbone(CAMVID11)
    patch = _run(tmp_path, backbone, methods=("zero-shot", "rns"), shots=(1,), out="patch")
    oracle = _run(tmp_path, backbone, methods=("zero-shot", "rns"), shots=(1,), mode="oracle")
    # Zero-shot is right on every pure class vector, so with exact segments it reaches 100;
    # RNS (trained on support features pooled from mixed patches) gains from the exact segments.
    assert _miou(patch, "zero-shot")["miou"] < 99.0
    assert _miou(oracle, "zero-shot")["miou"] == pytest.approx(100.0)
    assert _miou(oracle, "rns")["miou"] > _miou(patch, "rns")["miou"]


class GridProposer:
    """Region mode stand-in: a fixed 16x16-pixel grid partition of the resized image."""

    identity = "grid16"

    def partition(self, image):
        h, w = image.shape[:2]
        ys, xs = np.arange(h)[:, None] // 16, np.arange(w)[None, :] // 16
        return ys * (-(-w // 16)) + xs


def test_region_mode_scores_what_the_regions_allow(tmp_path):
    # 16-px class blocks on a 16-px region grid: each region is one class, so region mode is exact.
    rng = np.random.default_rng(1)
    maps = {s: [np.kron(rng.integers(0, 11, (2, 3)), np.ones((16, 16), int)) for _ in range(n)]
            for s, n in (("train", 6), ("test", 2))}
    write_camvid(tmp_path / "camvid", maps)
    results = _run(tmp_path, ColourBackbone(CAMVID11), proposer=GridProposer(),
                   methods=("zero-shot", "rns"), shots=(1,), mode="region")
    for method in ("zero-shot", "rns"):
        rec = _miou(results, method)
        assert rec["mode"] == "region" and rec["miou"] == pytest.approx(100.0)
        assert 0 < rec["panoptic"]["pq"] <= 100


def test_partial_visual_support_reports_seen_and_unseen(tmp_path):
    _dataset(tmp_path / "camvid")
    # The pseudo-label term (beta_p = 0.2) learns the unseen classes slowly: 2000 steps converge.
    results = _run(tmp_path, pixel_backbone(), methods=("rns", "knn-clip", "linear"),
                   shots=(2,), settings=("partial-visual:0.3",), method_options=MethodOptions(steps=2000))
    unseen = sorted(CAMVID11[c] for c in class_permutation(11, 0)[:3])  # int(0.3 * 11) = 3
    for method in ("rns", "knn-clip", "linear"):
        rec = _miou(results, method, 2, "partial-visual:0.3")
        assert sorted(rec["groups"]["unseen"]["classes"]) == unseen
        assert len(rec["groups"]["seen"]["classes"]) == 8
    # RNS pseudo-labels unseen classes from their (right) names; kNN-CLIP falls back to the
    # confident zero-shot; the offline linear probe has no sample of them and never predicts them.
    assert _miou(results, "rns", 2, "partial-visual:0.3")["miou"] == pytest.approx(100.0)
    assert _miou(results, "knn-clip", 2, "partial-visual:0.3")["miou"] == pytest.approx(100.0)
    assert _miou(results, "linear", 2, "partial-visual:0.3")["groups"]["unseen"]["miou"] == 0.0


def test_without_text_zero_shot_is_skipped_and_visual_methods_still_work(tmp_path):
    _dataset(tmp_path / "camvid")
    results = _run(tmp_path, pixel_backbone(), methods=("zero-shot", "rns", "knn-clip", "freeda"),
                   shots=(1,), settings=("no-text", "text-only"))
    assert _miou(results, "zero-shot", 1, "no-text")["status"] == "skipped"
    for method in ("rns", "knn-clip", "freeda"):
        assert _miou(results, method, 1, "no-text")["miou"] == pytest.approx(100.0), method
    # text-only = zero visual support (B = 0): zero-shot runs, the visual baselines are skipped.
    assert _miou(results, "zero-shot", 0, "text-only")["miou"] == pytest.approx(100.0)
    assert _miou(results, "knn-clip", 0, "text-only")["status"] == "skipped"
