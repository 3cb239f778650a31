"""`rns-eval` end to end with the tiny random test backbone on a synthetic CamVid-layout dataset:
the documented command writes results.json (per method, B and seed: mIoU and per-class IoU),
results.md and the plots, and says the numbers come from random weights."""
from __future__ import annotations

import json

import numpy as np

from _eval_fakes import block_labels, write_camvid
from rns_ros.cli.eval import main
from rns_ros.eval.datasets.classnames import CAMVID11


def test_documented_command_writes_every_number(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_camvid(tmp_path / "camvid", {s: [block_labels(rng, 3, 4, 16, 11) for _ in range(n)]
                                       for s, n in (("train", 6), ("test", 3))})
    out = tmp_path / "out"
    code = main(["--dataset", "camvid", "--root", str(tmp_path / "camvid"), "--methods", "zero-shot,rns",
                 "--shots", "1,2", "--seeds", "0", "--backbone", "test-tiny", "--out", str(out),
                 "--steps", "20", "--max-images", "2", "--no-progress", "--threads", "1"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert "RANDOM WEIGHTS" in results["warning"]
    assert "RANDOM WEIGHTS" in capsys.readouterr().err
    table = {(r["method"], r["shots"], r["seed"]): r for r in results["records"]}
    assert set(table) == {("zero-shot", 1, 0), ("zero-shot", 2, 0), ("rns", 1, 0), ("rns", 2, 0)}
    for rec in table.values():
        assert rec["status"] == "ok" and rec["num_images"] == 2 and rec["split"] == "test"
        assert 0.0 <= rec["miou"] <= 100.0
        assert list(rec["per_class_iou"]) == list(CAMVID11)
        present = [v for v in rec["per_class_iou"].values() if v is not None]
        assert abs(rec["miou"] - np.mean(present)) < 1e-3  # mean over classes that occur
    assert table[("rns", 2, 0)]["support"]["images"]
    summary = {(r["method"], r["shots"]) for r in results["summary"]}
    assert summary == {("zero-shot", 1), ("zero-shot", 2), ("rns", 1), ("rns", 2)}
    md = (out / "results.md").read_text()
    assert "RANDOM WEIGHTS" in md and "| method | B=1 | B=2 |" in md
    assert (out / "miou_vs_shots_camvid.png").stat().st_size > 0


def test_bad_arguments_are_refused_with_a_reason(tmp_path, capsys):
    assert main(["--dataset", "pascal-part", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["--dataset", "camvid", "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
                 "--backbone", "test-tiny"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--dataset", "camvid", "--root", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--methods", "rns,segformer"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_other_backbone_families_through_rns_eval(tmp_path):
    rng = np.random.default_rng(1)
    write_camvid(tmp_path / "camvid", {s: [block_labels(rng, 2, 3, 16, 11) for _ in range(n)]
                                       for s, n in (("train", 3), ("test", 1))})
    for backbone in ("test-tiny-dinotxt", "test-tiny-siglip2"):
        out = tmp_path / backbone
        assert main(["--dataset", "camvid", "--root", str(tmp_path / "camvid"), "--methods", "rns",
                     "--shots", "1", "--backbone", backbone, "--out", str(out), "--steps", "5",
                     "--no-progress", "--no-plots", "--threads", "1"]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["records"][0]["status"] == "ok" and "RANDOM WEIGHTS" in results["warning"]
        assert results["backbone_identity"].split("/")[0] in ("dinov3txt", "siglip2")
