"""rns-segment end to end with the test-tiny backbone, argument parsing, and clear errors."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rns_ros.cli import segment as cli
from rns_ros.visual import Palette, parse_palette

def write_image(path, h=40, w=56, seed=0):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2:] = (40, 40, 200)
    img += np.random.default_rng(seed).integers(0, 20, img.shape, dtype=np.uint8)
    Image.fromarray(img).save(path)
    return img


def test_segments_a_folder_and_writes_labels_overlays_and_classes(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    img = write_image(inputs / "a.png")
    write_image(inputs / "b.jpg", 30, 44, seed=1)
    (inputs / "notes.txt").write_text("not an image")
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[:, :28] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    code = cli.main([str(inputs), "--classes", "red, blue", "--backbone", "test-tiny", "--steps", "5",
                     "--exemplar", f"{inputs / 'a.png'}:{tmp_path / 'mask.png'}:red", "--out", str(out),
                     "--no-legend"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "classes.json").read_text())
    assert [(c["id"], c["name"]) for c in meta["classes"]] == [(1, "red"), (2, "blue")]
    assert meta["palette"] == "golden" and meta["classes"][0]["color"] == list(Palette().color(1))
    assert meta["mode"] == "patch" and meta["steps"] == 5 and "test-tiny" in meta["backbone"]
    assert [r["labels"] for r in meta["images"]] == ["a_labels.png", "b_labels.png"]
    for stem, shape in (("a", (40, 56)), ("b", (30, 44))):
        labels = np.asarray(Image.open(out / f"{stem}_labels.png"))
        assert labels.shape == shape and labels.dtype == np.uint8 and set(np.unique(labels)) <= {1, 2}
        over = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert over.shape == (*shape, 3)
    # overlay = half image, half the label's colour, recomputed here from the written labels
    labels = np.asarray(Image.open(out / "a_labels.png"))
    colours = np.array([[0, 0, 0], *(c["color"] for c in meta["classes"])], np.float32)[labels]
    expect = np.round(0.5 * img.astype(np.float32) + 0.5 * colours)
    got = np.asarray(Image.open(out / "a_overlay.png")).astype(np.float32)
    assert np.abs(got - expect).max() <= 1  # fixed-point blending: at most one level off
    assert "a_labels.png" in capsys.readouterr().out


def test_overlays_carry_a_legend_in_the_palette_colours_of_classes_json(tmp_path):
    img = write_image(tmp_path / "big.png", 150, 200)
    out = tmp_path / "out"
    code = cli.main([str(tmp_path / "big.png"), "--classes", "red, blue, green", "--backbone", "test-tiny",
                     "--steps", "3", "--out", str(out), "--palette", "#ff8800, #0088ff, #00aa00"])
    assert code == 0
    meta = json.loads((out / "classes.json").read_text())
    assert [c["hex"] for c in meta["classes"]] == ["#ff8800", "#0088ff", "#00aa00"]
    assert meta["palette"] == "custom (3 colours)"
    palette = parse_palette(",".join(c["hex"] for c in meta["classes"]))
    labels = np.asarray(Image.open(out / "big_labels.png"))
    over = np.asarray(Image.open(out / "big_overlay.png"))
    for c in meta["classes"]:  # a legend swatch (exact colour) for exactly the classes present
        solid = (over == np.array(c["color"], np.uint8)).all(axis=2).sum()
        assert (solid >= 16) == bool((labels == c["id"]).any()), c
    colours = np.array([[0, 0, 0], *(palette.color(i) for i in (1, 2, 3))], np.float32)[labels]
    blended = np.abs(over - np.round(0.5 * img + 0.5 * colours)).max(axis=2) <= 1
    assert 0.7 < blended.mean() < 1.0  # the legend covers a corner, the rest is the plain overlay
    assert cli.main([str(tmp_path / "big.png"), "--classes", "red", "--backbone", "test-tiny", "--steps", "3",
                     "--out", str(tmp_path / "plain"), "--no-legend", "--contours"]) == 0


def test_box_and_point_exemplars_go_through_prompt_masker(tmp_path, monkeypatch):
    import rns_ros.core.regions.prompts as prompts

    calls = []

    class FakeMasker:
        def __init__(self, config):
            calls.append(("init", config.model))

        def set_image(self, image):
            calls.append(("image", image.shape))
            self.shape = image.shape[:2]

        def from_box(self, box):
            calls.append(("box", tuple(box)))
            m = np.zeros(self.shape, bool)
            m[:10, :10] = True
            return m

        def from_points(self, points, labels):
            calls.append(("points", points.tolist(), labels.tolist()))
            return np.ones(self.shape, bool)

    monkeypatch.setattr(prompts, "PromptMasker", FakeMasker)
    write_image(tmp_path / "ex.png")
    code = cli.main([str(tmp_path / "ex.png"), "--classes", "red,blue", "--backbone", "test-tiny",
                     "--steps", "3", "--out", str(tmp_path / "o"), "--sam-model", "test-tiny",
                     "--exemplar-box", f"{tmp_path / 'ex.png'}:1,2,30.5,20:red",
                     "--exemplar-points", f"{tmp_path / 'ex.png'}:5,6;40,10-;7,8+:blue"])
    assert code == 0
    assert calls == [("init", "test-tiny"), ("image", (40, 56, 3)), ("box", (1.0, 2.0, 30.5, 20.0)),
                     ("image", (40, 56, 3)), ("points", [[5, 6], [40, 10], [7, 8]], [1, 0, 1])]
    meta = json.loads((tmp_path / "o" / "classes.json").read_text())
    assert [e["kind"] for e in meta["exemplars"]] == ["box", "points"]


def test_parsers():
    spec = cli.parse_exemplar_points("dir/img.png:1,2+;3.5,4-:my class")
    assert spec.image == Path("dir/img.png") and spec.class_name == "my class"
    assert spec.points == ((1.0, 2.0, 1), (3.5, 4.0, 0))
    assert cli.parse_exemplar_box("a.png:0,0,10,12:car").box == (0, 0, 10, 12)
    assert cli.parse_exemplar("a.png:m.png:car").mask == Path("m.png")
    assert cli.parse_classes(" road , car") == ["road", "car"]
    for bad in (lambda: cli.parse_exemplar("a.png:car"), lambda: cli.parse_exemplar_box("a.png:1,2,3:car"),
                lambda: cli.parse_exemplar_points("a.png:1,x:car"), lambda: cli.parse_classes("a,,b"),
                lambda: cli.parse_classes("a,a")):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("extra,message", [
    (["MISSING.png"], "neither an image file nor a folder"),
    (["--exemplar", "nope.png:m.png:red"], "does not exist"),
    (["--exemplar", "IMG:IMG:green"], "not in --classes"),
    (["--no-text"], "needs at least one exemplar"),
    (["--classes", "a,a"], "more than once"),
    (["--mode", "region", "--sam-checkpoint", "no-sam.pt"], "no-sam.pt"),
    (["--mode", "region"], "needs weights"),
    (["--palette", "#ff0000,#00ff0"], "--palette: palette entry 2 (class 2) '#00ff0' is not a hex colour"),
    (["--palette", "rainbow"], "--palette: palette 'rainbow' is neither a built-in palette"),
])
def test_clear_errors(tmp_path, capsys, extra, message):
    write_image(tmp_path / "x.png")
    args = [str(tmp_path / "x.png"), "--classes", "red", "--backbone", "test-tiny", "--out", str(tmp_path / "o")]
    args += [a.replace("IMG", str(tmp_path / "x.png")) for a in extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rns-segment: error:") and message in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_missing_weights_fail_fast_with_instructions(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    write_image(tmp_path / "x.png")
    start = time.monotonic()
    code = cli.main([str(tmp_path / "x.png"), "--classes", "red", "--out", str(tmp_path / "o")])
    assert code == 2 and time.monotonic() - start < 10
    err = capsys.readouterr().err  # the CLI's own flags, not the Python API's arguments
    assert "--checkpoint /path/open_clip_pytorch_model.bin" in err and "--backbone test-tiny" in err
    assert "build_backbone" not in err and "checkpoint=" not in err


def test_missing_sam2_weights_name_the_cli_flag(tmp_path, capsys):
    write_image(tmp_path / "x.png")
    args = [str(tmp_path / "x.png"), "--classes", "red", "--backbone", "test-tiny", "--mode", "region",
            "--out", str(tmp_path / "o")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "--sam-checkpoint /path/to/sam2.1_hiera_large.pt" in err and "checkpoint=" not in err


def test_help_lists_options_and_presets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--exemplar-box" in out and "test-tiny" in out and "--checkpoint" in out


def test_options_may_follow_the_inputs(tmp_path):
    write_image(tmp_path / "x.png")
    assert cli.main(["--classes", "red", str(tmp_path / "x.png"), "--backbone", "test-tiny", "--steps", "2",
                     "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "x_labels.png").is_file()


@pytest.mark.parametrize("backbone", ["test-tiny-dinotxt", "test-tiny-siglip2"])
def test_other_backbone_families_run_end_to_end(tmp_path, backbone):
    write_image(tmp_path / "x.png")
    assert cli.main([str(tmp_path / "x.png"), "--classes", "red,blue", "--backbone", backbone, "--steps", "2",
                     "--out", str(tmp_path / "o")]) == 0
    identity = json.loads((tmp_path / "o" / "classes.json").read_text())["backbone"]
    assert identity.startswith({"test-tiny-dinotxt": "dinov3txt/test-tiny/"}.get(backbone, "siglip2/test-tiny/"))


def test_dinotxt_without_files_names_them(tmp_path, capsys):
    write_image(tmp_path / "x.png")
    start = time.monotonic()
    code = cli.main([str(tmp_path / "x.png"), "--classes", "red", "--backbone", "dinov3txt-vitl16",
                     "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 10
    assert "--checkpoint" in err and "dinov3_vitl16_pretrain_lvd1689m" in err
