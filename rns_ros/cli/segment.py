"""`rns-segment`: segment image files or folders offline with RNS (no ROS).

    rns-segment photos/ --classes road,car,person --out seg/ \\
        --exemplar ex.jpg:ex_car.png:car --exemplar-box ex2.jpg:10,20,200,180:person

Writes, per input image, `<out>/<stem>_labels.png` (class ids: 8-bit, or 16-bit past id 255;
0 = no class) and `<out>/<stem>_overlay.png` (colour overlay with a legend of the classes
present), plus `<out>/classes.json` (id, name and colour of every class, and what ran). Class ids
are 1.. in the order of `--classes`; colours come from `--palette` (rns_ros.visual, the same
colours as the node's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

# An entry point: OpenMP threads sleep instead of spinning while they wait, unless the caller chose
# otherwise (read when torch loads, which happens later, in run()): with other processes on the
# cores, spinning made 2-thread ViT-B/16 forwards 8x slower here (docs/backbones.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from rns_ros.cli.engine_log import engine_log_shown
from rns_ros.core.advice import CLI_SPELLING, explain
from rns_ros.visual import BUILT_IN, DEFAULT_PALETTE, LegendStyle, OverlayStyle, Palette, parse_palette, \
    render_overlay, to_hex

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ExemplarSpec:
    """One --exemplar / --exemplar-box / --exemplar-points argument, parsed."""

    kind: str  # "mask" | "box" | "points"
    image: Path
    class_name: str
    mask: Path | None = None
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float, int], ...] = ()  # (x, y, label 1 = object / 0 = background)


def _split_spec(text: str, option: str, middle: str) -> tuple[Path, str, str]:
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ValueError(f"{option} {text!r} must look like IMAGE:{middle}:CLASS")
    return Path(parts[0]), parts[1], parts[2].strip()


def _numbers(text: str, count: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise ValueError(f"{what} {text!r} must be {count} comma-separated numbers")
    return values


def parse_exemplar(text: str) -> ExemplarSpec:
    """IMAGE:MASK:CLASS (mask png, non-zero = the class)."""
    image, mask, name = _split_spec(text, "--exemplar", "MASK")
    return ExemplarSpec("mask", image, name, mask=Path(mask))


def parse_exemplar_box(text: str) -> ExemplarSpec:
    """IMAGE:x0,y0,x1,y1:CLASS (pixel coordinates, x1/y1 exclusive)."""
    image, box, name = _split_spec(text, "--exemplar-box", "x0,y0,x1,y1")
    return ExemplarSpec("box", image, name, box=tuple(_numbers(box, 4, "box")))


def parse_exemplar_points(text: str) -> ExemplarSpec:
    """IMAGE:x,y[+|-];x,y[+|-];...:CLASS (+ = on the object, the default; - = background)."""
    image, spec, name = _split_spec(text, "--exemplar-points", "x,y+;x,y-")
    points = []
    for item in (s.strip() for s in spec.split(";")):
        label = 1
        if item[-1:] in "+-" and item:
            label, item = (1 if item[-1] == "+" else 0), item[:-1]
        x, y = _numbers(item, 2, "point")
        points.append((x, y, label))
    if not points:
        raise ValueError(f"--exemplar-points {text!r} names no point")
    return ExemplarSpec("points", image, name, points=tuple(points))


def parse_classes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not names or any(not n for n in names):
        raise ValueError(f"--classes {text!r} must be comma-separated non-empty names, e.g. road,car")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"--classes names {dupes} more than once")
    return names


def collect_images(inputs: list[str]) -> list[Path]:
    """Image files named directly, plus the image files (by suffix) directly inside folders."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"input {item!r} is neither an image file nor a folder")
    if not found:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in {inputs}")
    stems = [f.stem for f in found]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(f"several inputs share the file stem(s) {clashes}; their outputs would overwrite "
                         "each other: segment them into different --out folders")
    return found


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_mask(path: Path) -> np.ndarray:
    """(H, W) bool: non-zero pixels (any channel) of a mask image."""
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"mask file {str(path)!r} does not exist")
    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr.any(axis=-1) if arr.ndim == 3 else arr != 0


def save_labels(path: Path, labels: np.ndarray) -> None:
    from PIL import Image

    if labels.size and int(labels.max()) > 255:
        Image.fromarray(labels.astype(np.uint16)).save(path)
    else:
        Image.fromarray(labels.astype(np.uint8)).save(path)


def build_parser() -> argparse.ArgumentParser:
    from rns_ros.core.backbones import BACKBONE_PRESETS
    from rns_ros.core.profiles import AUTO_RUNTIME, PROFILE_NAMES
    from rns_ros.core.runtimes import PRECISIONS, RUNTIMES

    p = argparse.ArgumentParser(prog="rns-segment", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Points and boxes are pixel coordinates, x right, y down. "
                                       "Box and point exemplars are turned into masks by SAM 2.")
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("--classes", required=True, help="comma-separated class names, e.g. road,car,person")
    p.add_argument("--out", default="rns_out", help="output folder (created; default: rns_out)")
    p.add_argument("--exemplar", action="append", default=[], metavar="IMAGE:MASK:CLASS",
                   help="visual exemplar: image + mask png (non-zero = the class); repeatable")
    p.add_argument("--exemplar-box", action="append", default=[], metavar="IMAGE:x0,y0,x1,y1:CLASS",
                   help="visual exemplar from a box (SAM 2 makes the mask); repeatable")
    p.add_argument("--exemplar-points", action="append", default=[], metavar="IMAGE:x,y+;x,y-:CLASS",
                   help="visual exemplar from clicks, + object / - background (SAM 2); repeatable")
    p.add_argument("--backbone", default="openclip-vit-b16",
                   help=f"backbone preset ({', '.join(BACKBONE_PRESETS)}) or openclip:<ARCH>")
    p.add_argument("--checkpoint", help="local backbone weights (works offline): a file; for dinov3txt-vitl16 "
                                        "the folder holding its two files, or 'BACKBONE.pth,DINOTXT.pth'")
    p.add_argument("--pretrained", help="open_clip pretrained tag overriding the preset's")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="precision of the image encoder (fp16: CUDA only; int8: --runtime onnxruntime or openvino on a CPU; "
                        "default: fp32, or the profile's)")
    p.add_argument("--runtime", default=AUTO_RUNTIME, choices=(AUTO_RUNTIME,) + RUNTIMES,
                   help="what computes the image encoder (default: the profile's; cpu-fast: OpenVINO on CPUs with "
                        "AMX, else torch; docs/backbones.md 'Runtimes')")
    p.add_argument("--onnx-model", help="the runtime's exported encoder, the folder rns-export wrote (default: "
                                        "exported once into ~/.cache/rns_ros/onnx)")
    p.add_argument("--mode", default="patch", choices=("patch", "region"),
                   help="patch: per 16x16 patch; region: per SAM 2 region (slow on a CPU)")
    p.add_argument("--steps", type=int, help="test-time training steps (default: the adapter's, 700)")
    p.add_argument("--profile", default="auto", choices=PROFILE_NAMES,
                   help="named settings: auto (default: cuda on a GPU, else default), default (the paper's fp32 "
                        "protocol), cuda (bf16 backbone and SAM 2, TF32 outside the adapter) or cpu-fast (short "
                        "side 224, one window, bf16 where the CPU has it, 140 steps); options given here win")
    p.add_argument("--seed", type=int, default=0, help="adapter seed (default 0)")
    p.add_argument("--no-text", action="store_true",
                   help="classes without text features (the 'w/o text' mode; needs exemplars)")
    p.add_argument("--sam-model", help="SAM 2 preset for --mode region and box/point exemplars")
    p.add_argument("--sam-checkpoint", help="local SAM 2 checkpoint file")
    p.add_argument("--palette", default=DEFAULT_PALETTE,
                   help=f"class colours: a built-in palette ({', '.join(BUILT_IN)}; default {DEFAULT_PALETTE}) "
                        "or hex colours by class id, e.g. '#e41a1c,#377eb8'")
    p.add_argument("--no-legend", action="store_true", help="overlays without the legend of class names")
    p.add_argument("--contours", action="store_true", help="outline the classes in the overlays")
    return p


def parse_palette_option(value: str) -> Palette:
    try:
        return parse_palette(value)
    except ValueError as exc:
        raise ValueError(f"--palette: {exc}") from None


def _proposal_config(args, profile):
    from rns_ros.core.regions.proposals import ProposalConfig

    from rns_ros.core.regions.sam2_models import check_checkpoint

    kwargs = {"device": args.device, "checkpoint": args.sam_checkpoint}
    if args.sam_model:
        kwargs["model"] = args.sam_model
    config = profile.apply_proposals(ProposalConfig(**kwargs))  # the profile's SAM 2 precision
    check_checkpoint(config.model, config.checkpoint)  # fail before loading any model
    return config


def _check_files(specs: list[ExemplarSpec], class_names: list[str]) -> None:
    for spec in specs:
        if spec.class_name not in class_names:
            raise ValueError(f"exemplar class {spec.class_name!r} is not in --classes {class_names}")
        for f in (spec.image, spec.mask):
            if f is not None and not f.is_file():
                raise FileNotFoundError(f"exemplar file {str(f)!r} does not exist")


class ExemplarMasks:
    """Turns exemplar specs into masks; builds the SAM 2 `PromptMasker` only if a box or points need it."""

    def __init__(self, proposal_config) -> None:
        self.proposal_config = proposal_config
        self._masker = None

    def mask(self, spec: ExemplarSpec, image: np.ndarray) -> np.ndarray:
        if spec.kind == "mask":
            return load_mask(spec.mask)
        if self._masker is None:
            from rns_ros.core.regions.prompts import PromptMasker

            self._masker = PromptMasker(self.proposal_config)
        self._masker.set_image(image)
        if spec.kind == "box":
            mask = self._masker.from_box(spec.box)
        else:
            pts = np.array([(x, y) for x, y, _ in spec.points], dtype=np.float64)
            mask = self._masker.from_points(pts, np.array([lab for _, _, lab in spec.points]))
        if not np.any(mask):
            raise ValueError(f"SAM 2 found no object for the {spec.kind} exemplar on {str(spec.image)!r}; "
                             "draw a tighter box, more points, or give a mask")
        return mask


def run(args) -> int:
    from PIL import Image

    from rns_ros.core.adapter.config import AdapterConfig
    from rns_ros.core.adapter.test_time import TestTimeAdapter
    from rns_ros.core.backbones import build_backbone
    from rns_ros.core.profiles import resolve_profile
    from rns_ros.core.segmenter import Segmenter
    from rns_ros.core.memory.support import SupportMemory

    class_names = parse_classes(args.classes)
    palette = parse_palette_option(args.palette)
    style = OverlayStyle(legend=None if args.no_legend else LegendStyle(),
                         contours=args.contours)
    specs = ([parse_exemplar(s) for s in args.exemplar] + [parse_exemplar_box(s) for s in args.exemplar_box]
             + [parse_exemplar_points(s) for s in args.exemplar_points])
    _check_files(specs, class_names)
    if args.no_text and not specs:
        raise ValueError("--no-text needs at least one exemplar: without text or exemplars there is "
                         "nothing to recognise classes by")
    images = collect_images(args.inputs)
    profile, note = resolve_profile(args.profile, args.device)
    choice = profile.runtime_for(args.device, args.runtime)
    precision, adapter_config = profile.apply(device=args.device, adapter=AdapterConfig(seed=args.seed),
                                              runtime=choice.runtime)
    precision = args.precision or precision  # options given on the command line win over the profile
    if args.steps is not None:
        adapter_config = replace(adapter_config, steps=args.steps)
    proposal_config = _proposal_config(args, profile) if (args.mode == "region" or any(
        s.kind != "mask" for s in specs)) else None
    for line in (note, profile.apply_device_settings(args.device)):  # once the arguments passed every check
        if line:
            print(f"rns-segment: {line}", file=sys.stderr)

    print(f"rns-segment: {'WARNING: ' if choice.fallback else ''}{choice.reason}", file=sys.stderr)
    backbone = build_backbone(args.backbone, device=args.device, checkpoint=args.checkpoint,
                              pretrained=args.pretrained, precision=precision,
                              resolution=profile.resolution, runtime=choice.runtime, onnx_model=args.onnx_model)
    memory = SupportMemory(dim=backbone.dim, device=backbone.device, backbone_identity=backbone.identity)
    proposer = None
    if args.mode == "region":
        from rns_ros.core.regions.proposals import RegionProposer

        proposer = RegionProposer(proposal_config)
    seg = Segmenter(backbone, memory, TestTimeAdapter(adapter_config), proposer=proposer, mode=args.mode)
    ids = {name: seg.add_class(name, use_text=not args.no_text) for name in class_names}
    names = {cid: name for name, cid in ids.items()}

    masks = ExemplarMasks(proposal_config)
    for spec in specs:
        img = load_rgb(spec.image)
        seg.add_exemplar(img, masks.mask(spec, img), class_id=ids[spec.class_name])
        print(f"exemplar {spec.kind} {spec.image} -> {spec.class_name}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for path in images:
        img = load_rgb(path)
        start = time.perf_counter()
        result = seg.segment(img)
        elapsed = time.perf_counter() - start
        labels_path, overlay_path = out / f"{path.stem}_labels.png", out / f"{path.stem}_overlay.png"
        save_labels(labels_path, result.labels)
        picture, _ = render_overlay(img, result.labels, names, palette, style)
        Image.fromarray(picture).save(overlay_path)
        shares = {name: float((result.labels == cid).mean()) for name, cid in ids.items()}
        top = ", ".join(f"{n} {s:.0%}" for n, s in sorted(shares.items(), key=lambda kv: -kv[1])[:3])
        print(f"{path} -> {labels_path} ({elapsed:.2f} s; {top})")
        records.append({"input": str(path), "labels": labels_path.name, "overlay": overlay_path.name,
                        "seconds": round(elapsed, 4), "timings": {k: round(v, 4) for k, v in result.timings.items()}})
    meta = {"backbone": backbone.identity, "mode": args.mode, "profile": profile.name, "precision": precision,
            "runtime": choice.runtime,
            "steps": adapter_config.steps,
            "palette": palette.describe(),
            "classes": [{"id": cid, "name": name, "color": list(palette.color(cid)), "hex": to_hex(palette.color(cid))}
                        for name, cid in ids.items()],
            "exemplars": [{"kind": s.kind, "image": str(s.image), "class": s.class_name} for s in specs],
            "images": records}
    (out / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    try:
        with engine_log_shown("rns-segment"):
            return run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"rns-segment: error: {explain(exc, CLI_SPELLING)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
