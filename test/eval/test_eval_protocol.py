"""Cross-dataset support (Cityscapes support, ACDC scored: the paper's Fig. 9) end to end, and the
one-switch paper protocol (`--protocol paper`)."""
from __future__ import annotations

import numpy as np
import pytest

from _eval_fakes import ColourBackbone, block_labels, paint, save_png
from rns_ros.cli.eval import build_parser, config_from_args
from rns_ros.eval.datasets.classnames import CITYSCAPES19
from rns_ros.eval.runner import EvalConfig, run_evaluation
from rns_ros.eval.settings import SupportSetting


def _write_city_and_acdc(root):
    rng = np.random.default_rng(0)
    for i in range(6):  # Cityscapes train: the support
        labels = block_labels(rng, 3, 4, 8, 12)
        name = f"aachen_{i:06d}_000019"
        save_png(root / "cityscapes" / "gtFine" / "train" / "aachen" / f"{name}_gtFine_labelTrainIds.png", labels)
        _save_rgb(root / "cityscapes" / "leftImg8bit" / "train" / "aachen" / f"{name}_leftImg8bit.png",
                  paint(labels, 255))
    for i in range(2):  # ACDC val: the scored images
        labels = block_labels(rng, 3, 4, 8, 12)
        name = f"GOPR0475_frame_{i:06d}"
        save_png(root / "acdc" / "gt" / "fog" / "val" / "GOPR0475" / f"{name}_gt_labelTrainIds.png", labels)
        _save_rgb(root / "acdc" / "rgb_anon" / "fog" / "val" / "GOPR0475" / f"{name}_rgb_anon.png", paint(labels, 255))


def _save_rgb(path, image):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_acdc_scored_with_support_from_cityscapes(tmp_path):
    _write_city_and_acdc(tmp_path / "data")
    # Only 12 colours exist in the fake: the other 7 names borrow class 0's text (never painted).
    backbone = ColourBackbone(CITYSCAPES19, patch_size=1,
                              text_overrides={n: [CITYSCAPES19[0]] for n in CITYSCAPES19[12:]})
    config = EvalConfig(datasets=("acdc",), root=str(tmp_path / "data"), out=str(tmp_path / "out"),
                        methods=("rns",), shots=(1,), support_dataset="cityscapes", progress=False, plots=False)
    results = run_evaluation(config, backbone=backbone, log=lambda _: None)
    [rec] = results["records"]
    assert rec["status"] == "ok" and rec["dataset"] == "acdc" and rec["num_images"] == 2
    assert all(i.startswith("aachen/") for i in rec["support"]["images"])  # drawn from Cityscapes
    assert rec["miou"] > 99.0
    with pytest.raises(ValueError, match="unknown dataset"):
        EvalConfig(datasets=("acdc",), root="x", out="y", support_dataset="kitti")


def test_protocol_paper_sets_region_mode_paper_seeds_and_b_per_setting(tmp_path):
    args = build_parser().parse_args(["--dataset", "voc", "--root", "r", "--out", "o", "--protocol", "paper",
                                      "--settings", "full,partial-visual:0.5,partial-text:0.5,text-only"])
    config = config_from_args(args)
    assert config.mode == "region" and config.seeds is None and config.protocol == "paper"
    shots = {s: config.shots_for(SupportSetting.parse(s)) for s in config.settings}
    assert shots == {"full": (1, 5, 10, 20), "partial-visual:0.5": (3,), "partial-text:0.5": (1,), "text-only": (0,)}
    assert config.seeds_for("voc", SupportSetting.parse("full")) == (100, 18, 42, 84, 92, 256, 512, 1024)
    assert len(config.seeds_for("voc", SupportSetting.parse("partial-visual:0.5"))) == 16
    assert config.seeds_for("ade20k", SupportSetting.parse("partial-text:0.5")) == (100, 18, 42, 84, 92, 256, 512, 1024)
    # explicit flags still win; without the protocol the old defaults hold
    explicit = config_from_args(build_parser().parse_args(
        ["--dataset", "voc", "--root", "r", "--out", "o", "--protocol", "paper", "--mode", "patch", "--seeds", "7",
         "--shots", "2"]))
    assert (explicit.mode, explicit.seeds, explicit.shots_for(SupportSetting.parse("full"))) == ("patch", (7,), (2,))
    plain = config_from_args(build_parser().parse_args(["--dataset", "voc", "--root", "r", "--out", "o"]))
    assert (plain.mode, plain.seeds, plain.shots, plain.protocol) == ("patch", (0,), (1, 5), None)
    paper_seeds = config_from_args(build_parser().parse_args(
        ["--dataset", "voc", "--root", "r", "--out", "o", "--seeds", "paper"]))
    assert paper_seeds.seeds is None and paper_seeds.mode == "patch"
