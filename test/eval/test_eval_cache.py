"""The feature cache is reused across runs, settings and seeds, and invalidated when the backbone
identity (weights + preprocessing) changes; finished runs are resumed, not recomputed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _eval_fakes import ColourBackbone, block_labels, write_camvid
from rns_ros.eval.cache import FeatureCache
from rns_ros.eval.datasets.classnames import CAMVID11
from rns_ros.eval.methods import MethodOptions
from rns_ros.eval.runner import EvalConfig, run_evaluation


def test_get_or_compute_stores_once_and_keys_by_identity(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3.0), "meta": [1, 2]}

    cache = FeatureCache(tmp_path, "openclip/ViT-B-16/laion/S448")
    first = cache.get_or_compute("dense", "camvid", "test/a", compute)
    again = cache.get_or_compute("dense", "camvid", "test/a", compute)
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    assert torch.equal(first["x"], again["x"]) and again["meta"] == [1, 2]
    # Same weights, other preprocessing (short side 336): another identity, recomputed.
    other = FeatureCache(tmp_path, "openclip/ViT-B-16/laion/S336")
    other.get_or_compute("dense", "camvid", "test/a", compute)
    assert len(calls) == 2 and other.misses == 1
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic writes leave nothing behind


def test_stale_or_corrupt_entries_are_recomputed(tmp_path):
    cache = FeatureCache(tmp_path, "id-a")
    value = {"x": torch.ones(2)}
    path = cache.path("dense", "ns", "img")
    cache.get_or_compute("dense", "ns", "img", lambda: value)
    # An entry whose stored key disagrees (another identity / format) is not trusted.
    stored = torch.load(path, weights_only=True)
    stored["key"]["identity"] = "id-b"
    torch.save(stored, path)
    got = cache.get_or_compute("dense", "ns", "img", lambda: {"x": torch.zeros(2)})
    assert torch.equal(got["x"], torch.zeros(2)) and cache.misses == 2
    path.write_bytes(b"not a torch file")
    got = cache.get_or_compute("dense", "ns", "img", lambda: {"x": torch.full((2,), 5.0)})
    assert torch.equal(got["x"], torch.full((2,), 5.0)) and cache.misses == 3
    assert cache.get_or_compute("dense", "ns", "img", lambda: 1 / 0)["x"][0] == 5.0


def test_dense_features_round_trip(tmp_path):
    backbone = ColourBackbone(CAMVID11)
    image = np.zeros((20, 28, 3), dtype=np.uint8)
    cache = FeatureCache(tmp_path, backbone.identity)
    fresh = cache.dense("camvid", "test/x", lambda: backbone.encode_image(image))
    loaded = cache.dense("camvid", "test/x", lambda: pytest.fail("should be cached"))
    assert torch.equal(fresh.features, loaded.features)
    assert (loaded.image_size, loaded.resized_size, loaded.patch_size) == ((20, 28), (20, 28), 8)


def _write(root):
    rng = np.random.default_rng(0)
    write_camvid(root, {s: [block_labels(rng, 3, 4, 8, 11) for _ in range(n)]
                        for s, n in (("train", 6), ("test", 2))})


def _config(tmp_path, **kw):
    kw.setdefault("method_options", MethodOptions(steps=20))
    return EvalConfig(datasets=("camvid",), root=str(tmp_path / "camvid"), out=str(tmp_path / "out"),
                      methods=("zero-shot", "rns", "linear"), shots=(1, 2), seeds=(0, 1),
                      settings=("full", "partial-text:0.5"), progress=False, plots=False, **kw)


def test_runs_reuse_features_across_settings_and_seeds_and_resume(tmp_path):
    _write(tmp_path / "camvid")
    backbone = ColourBackbone(CAMVID11)
    first = run_evaluation(_config(tmp_path), backbone=backbone, log=lambda _: None)
    support_images = {i for r in first["records"] if "support" in r for i in r["support"]["images"]}
    # Every test image and every support image encoded once, whatever the settings and seeds.
    assert backbone.image_calls == 2 + len(support_images)
    assert backbone.support_calls == len(support_images)
    assert backbone.text_calls == 1
    runs = sorted((tmp_path / "out" / "runs").rglob("*.json"))
    assert len(runs) == 2 * 2 * 2 * 3  # settings x B x seeds x methods
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    # Second run: nothing is encoded and nothing is recomputed ...
    again = ColourBackbone(CAMVID11)
    second = run_evaluation(_config(tmp_path), backbone=again, log=lambda _: None)
    assert again.image_calls == 0 and again.text_calls == 0
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps
    assert json.dumps(second["records"], sort_keys=True) == json.dumps(first["records"], sort_keys=True)
    # ... except a run whose result file was lost (an interrupted run resumes where it stopped).
    lost = tmp_path / "out" / "runs" / "camvid" / "full" / "rns" / "B2-seed1.json"
    lost.unlink()
    run_evaluation(_config(tmp_path), backbone=again, log=lambda _: None)
    assert lost.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != lost)


def test_another_backbone_identity_recomputes_features_and_results(tmp_path):
    _write(tmp_path / "camvid")
    run_evaluation(_config(tmp_path), backbone=ColourBackbone(CAMVID11), log=lambda _: None)
    changed = ColourBackbone(CAMVID11, identity="colour-fake/other-preprocessing")
    result = run_evaluation(_config(tmp_path), backbone=changed, log=lambda _: None)
    assert changed.image_calls > 0 and changed.text_calls == 1
    assert result["backbone_identity"] == "colour-fake/other-preprocessing"
    # A changed method setting recomputes that method only.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").rglob("*.json")}
    run_evaluation(_config(tmp_path, method_options=MethodOptions(steps=21)), backbone=changed, log=lambda _: None)
    changed_files = {p for p, t in stamps.items() if p.stat().st_mtime_ns != t}
    assert changed_files and all(p.parent.name in ("rns", "linear") for p in changed_files)
