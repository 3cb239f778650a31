"""`rns-export`: write a backbone's dense image encoder as ONNX, for the runtimes (rns_ros.core.runtimes).

    rns-export --backbone openclip-vit-b16 --checkpoint open_clip_model.safetensors --out onnx/vitb16
    rns-export --backbone openclip-vit-b16 --checkpoint ... --precision int8 --out onnx/vitb16-int8

Writes DIR/encoder.onnx (dynamic batch and window size: every window of every profile) and
DIR/encoder.json (preset, identity, normalisation, opset, precision, sha256), then checks the file
against the torch backbone on one window with ONNX Runtime's CPU provider and prints the cosine.
Use the folder with `--runtime ... --onnx-model DIR` (rns-segment, rns-bench, rns-bag) or the node's
`-p runtime:=... -p onnx_model:=DIR`; a folder made from other weights is refused there.
Precisions: fp32 (ONNX Runtime fp32, OpenVINO fp32/bf16/int8: OpenVINO quantizes the fp32 file itself,
once per machine, into the cache; TensorRT fp16/fp32), int8 (ONNX Runtime on a CPU: dynamic
quantization), fp16 (ONNX Runtime's CUDA provider).
"""
from __future__ import annotations

import argparse
import sys

from rns_ros.cli.engine_log import engine_log_shown
from rns_ros.core.advice import CLI_SPELLING, explain


def build_parser() -> argparse.ArgumentParser:
    from rns_ros.core.backbones import BACKBONE_PRESETS
    from rns_ros.core.runtimes.export import FILE_PRECISIONS

    p = argparse.ArgumentParser(prog="rns-export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="openclip-vit-b16",
                   help=f"backbone preset ({', '.join(BACKBONE_PRESETS)}) or openclip:<ARCH> (default %(default)s)")
    p.add_argument("--checkpoint", help="local backbone weights, as for rns-segment (the export carries them)")
    p.add_argument("--pretrained", help="open_clip pretrained tag overriding the preset's")
    p.add_argument("--random-weights", action="store_true",
                   help="export the full-size model untrained (compute benchmarks only)")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights (test-tiny*, --random-weights)")
    p.add_argument("--precision", default="fp32", choices=FILE_PRECISIONS,
                   help="precision of the file (default %(default)s; see above)")
    p.add_argument("--out", required=True, help="output folder (created; its encoder.onnx/json are replaced)")
    return p


def run(args) -> int:
    import torch

    from rns_ros.core.backbones import build_backbone
    from rns_ros.core.runtimes.export import export_encoder

    backbone = build_backbone(args.backbone, checkpoint=args.checkpoint, pretrained=args.pretrained,
                              seed=args.seed, random_weights=args.random_weights)
    exported = export_encoder(backbone, args.out, precision=args.precision, preset=args.backbone)
    print(f"rns-export: {exported.onnx_path} ({exported.bytes / 2**20:.0f} MiB, {exported.precision}, opset "
          f"{exported.opset}) of {exported.model_identity}")
    # One window through the file and through torch: the export is the computation it claims to be.
    crop = backbone.resolution.test_crop
    crops = torch.randn(1, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(exported.onnx_path), providers=["CPUExecutionProvider"])
        runtime = torch.from_numpy(session.run(None, {exported.input: crops.numpy()})[0])
        cosine = torch.nn.functional.cosine_similarity(runtime, backbone.encode_crops(crops), dim=-1)
        print(f"rns-export: check on one {crop}x{crop} window, ONNX Runtime CPU vs torch fp32: cosine min "
              f"{float(cosine.min()):.6f}, mean {float(cosine.mean()):.6f}")
    except Exception as exc:  # noqa: BLE001 - e.g. fp16 kernels missing on the CPU: the file is still written
        print(f"rns-export: not checked on this CPU ({type(exc).__name__}: {exc}); the runtime checks it on load",
              file=sys.stderr)
    print(f"rns-export: use it with --runtime RUNTIME --onnx-model {args.out} (node: -p runtime:=RUNTIME "
          f"-p onnx_model:={args.out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with engine_log_shown("rns-export"):
            return run(args)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as exc:
        print(f"rns-export: error: {explain(exc, CLI_SPELLING)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
