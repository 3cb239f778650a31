"""`rns-eval`: run the RNS evaluation protocol from the command line.

    rns-eval --dataset camvid --root /data/camvid --methods zero-shot,rns --shots 1,5 --seeds 0 \\
             --backbone test-tiny --out runs/camvid

writes <out>/results.json (every number), <out>/results.md (tables) and plots. See docs/eval.md.
"""
from __future__ import annotations

import argparse
import sys

from rns_ros.eval.methods import METHOD_NAMES, FreedaConfig, KnnClipConfig, MethodOptions
from rns_ros.eval.sampling import SamplingConfig


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _seeds(text: str) -> tuple[int, ...] | str:
    return "paper" if text.strip().lower() == "paper" else _ints(text)


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key.strip(), cast(value)
        except ValueError:
            pass
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    from rns_ros.eval.datasets import DATASETS
    p = argparse.ArgumentParser(
        prog="rns-eval", description="Reproduce the RNS few-shot open-vocabulary segmentation protocol: "
        "support sampling, methods and baselines, dataset-level mIoU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", "--datasets", dest="datasets", type=_csv, required=True,
                   help=f"comma-separated datasets: {', '.join(DATASETS)}")
    p.add_argument("--root", required=True,
                   help="dataset folder, or a parent holding them under their usual names "
                        "(VOCdevkit/VOC2012, VOCdevkit/VOC2010, coco_stuff164k, cityscapes, "
                        "ADEChallengeData2016, camvid)")
    p.add_argument("--out", required=True, help="output folder (results.json, results.md, plots, resume state)")
    p.add_argument("--methods", type=_csv, default=["zero-shot", "rns"],
                   help=f"comma-separated: {', '.join(METHOD_NAMES)}, or rns-k<N>")
    p.add_argument("--shots", type=_ints, default=None,
                   help="B values: support images per class (default 1,5; --protocol paper: per setting)")
    p.add_argument("--seeds", type=_seeds, default=None,
                   help="support-sampling seeds, or 'paper' (full support VOC/City: 8 seeds, others: 4; "
                        "partial support 16 and 8) (default 0; --protocol paper: paper)")
    p.add_argument("--settings", type=_csv, default=["full"],
                   help="full, partial-visual:F, partial-text:F, text-only, no-text")
    p.add_argument("--mode", choices=("patch", "region", "oracle"), default=None,
                   help="queries: patches, SAM 2 regions, or ground-truth segments (oracle) "
                        "(default patch; --protocol paper: region)")
    p.add_argument("--protocol", choices=("paper",), default=None,
                   help="paper: region mode, the paper's seeds and B per setting (full 1,5,10,20; "
                        "partial-visual 3; partial-text 1); explicit --mode/--seeds/--shots still win")
    p.add_argument("--backbone", default="openclip-vit-b16", help="backbone preset (test-tiny: random, tests only)")
    p.add_argument("--checkpoint", default=None,
                   help="local backbone weights (dinov3txt-vitl16: a folder, or 'BACKBONE.pth,DINOTXT.pth')")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--split", default=None, help="scored split (default: val; camvid: test)")
    p.add_argument("--support-split", default=None, help="split the support is drawn from (default: train)")
    p.add_argument("--support-dataset", default=None,
                   help="draw the support from another dataset, classes matched by name "
                        "(e.g. cityscapes for acdc, the paper's Fig. 9)")
    p.add_argument("--support-root", default=None, help="root of --support-dataset (default: --root)")
    p.add_argument("--max-images", type=int, default=None, help="score only the first N test images")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps of RNS and the linear probe (default 700)")
    p.add_argument("--solver", default=None, help="AdapterConfig.solver override")
    p.add_argument("--adapter", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="AdapterConfig field for every RNS variant, e.g. lr=0.02, optimizer=adam (repeatable)")
    p.add_argument("--classifier-seed", type=int, default=0, help="initialisation seed of every classifier")
    p.add_argument("--cache-dir", default=None, help="feature cache (default <out>/cache); share it between runs")
    p.add_argument("--pool-size", type=int, default=SamplingConfig.pool_size, help="support candidate pool cap")
    p.add_argument("--authors-sampling", action="store_true",
                   help="sample exactly like the authors' code (an image may be drawn twice and count twice)")
    p.add_argument("--knn-k", type=int, default=KnnClipConfig.k, help="kNN-CLIP neighbours")
    p.add_argument("--knn-temperature", type=float, default=KnnClipConfig.temperature,
                   help="kNN-CLIP: vote weight exp(similarity / T)")
    p.add_argument("--knn-threshold", type=float, default=KnnClipConfig.threshold,
                   help="kNN-CLIP: zero-shot confidence below which the kNN vote is used")
    p.add_argument("--freeda-alpha", type=float, default=FreedaConfig.alpha,
                   help="FREEDA: weight of the local visual similarity")
    p.add_argument("--proposal", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="ProposalConfig field for region mode, e.g. model=sam2.1-hiera-large, "
                        "checkpoint=/w/sam2.1_hiera_large.pt, points_per_batch=256 (repeatable)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is often faster for the tiny test-time classifiers)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace):
    from rns_ros.eval.runner import EvalConfig
    options = MethodOptions(steps=args.steps, seed=args.classifier_seed, solver=args.solver,
                            adapter=dict(args.adapter),
                            knn=KnnClipConfig(k=args.knn_k, temperature=args.knn_temperature,
                                              threshold=args.knn_threshold),
                            freeda=FreedaConfig(alpha=args.freeda_alpha))
    paper = args.protocol == "paper"
    seeds = args.seeds or ("paper" if paper else (0,))
    return EvalConfig(
        datasets=tuple(args.datasets), root=args.root, out=args.out, methods=tuple(args.methods),
        shots=tuple(args.shots or (1, 5)), seeds=None if seeds == "paper" else seeds, settings=tuple(args.settings),
        mode=args.mode or ("region" if paper else "patch"), protocol=args.protocol if args.shots is None else None,
        backbone=args.backbone, checkpoint=args.checkpoint, device=args.device, split=args.split,
        support_split=args.support_split, support_dataset=args.support_dataset,
        support_root=args.support_root, max_images=args.max_images, cache_dir=args.cache_dir,
        sampling=SamplingConfig(pool_size=args.pool_size, skip_taken=not args.authors_sampling),
        method_options=options, proposal=dict(args.proposal), progress=not args.no_progress,
        plots=not args.no_plots)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    try:
        config = config_from_args(args)
        from rns_ros.eval.runner import run_evaluation
        results = run_evaluation(config)
    except (ValueError, FileNotFoundError) as err:
        print(f"rns-eval: error: {err}", file=sys.stderr)
        return 2
    if results.get("warning"):
        print(f"rns-eval: {results['warning']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
