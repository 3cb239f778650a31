"""`rns-bench`: per-stage latency of the whole frame pipeline, printed as a markdown table.

    rns-bench --random-weights                         # full-size ViT-B/16, compute only (no weights here)
    rns-bench --random-weights --modes patch,region --sam-model sam2.1-hiera-tiny --points-per-side 16
    rns-bench --backbone test-tiny --repeats 3          # smoke run of the benchmark itself
    rns-bench --random-weights --backbone openclip-vit-b16,dinov3txt-vitl16,siglip2-vitl16-512 --sizes 640x480
                                                       # several backbones in one run: one row each
    rns-bench --random-weights --sizes 640x480 --profile default,cpu-fast   # both profiles, frames interleaved

Stages: decode (sensor_msgs/Image -> RGB array), features (backbone, sliding window), proposals
(SAM 2 partition + region pooling; region mode only), retrieval (k-NN of the frame's patch
features in the support index, timed alone, synchronised on a GPU; the adapter runs it again inside), adapter (test-time
training + prediction, retrieval included), upsample (probabilities -> label and confidence maps,
copied to the host), publish (label and confidence images encoded as messages). On a GPU the
segmenter's stages are timed with CUDA events (no synchronisation between them). Median and p95
over `--repeats` frames after one warm-up frame;
frames per second = 1 / median of the whole frame; peak memory = the process's peak RSS (and
CUDA peak allocation on a GPU, per setting). `--profile` names one or more profiles
(rns_ros.core.profiles; their values apply to settings left at their defaults; auto, the default,
is cuda on a GPU); several are run with their frames interleaved, so a busy machine slows them
alike, each frame under its own profile's TF32 setting. `--json` is rewritten after every row, so
a run cut short keeps the rows it finished. With `--random-weights` the numbers are compute cost only:
predictions from random weights mean nothing, and the class text features are random unit vectors
(the text tower runs once per class name, never per frame).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from dataclasses import replace
from typing import Iterator

# An entry point: OpenMP threads sleep instead of spinning while they wait, unless the caller chose
# otherwise. Read when torch loads its OpenMP runtime, hence before `import torch`. With other
# processes on the cores, spinning made 2-thread ViT-B/16 forwards 8x slower here (docs/backbones.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rns_ros.machine import cpu_model  # noqa: E402

STAGES = ("decode", "features", "proposals", "retrieval", "adapter", "upsample", "publish")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    return [_parse_size(s) for s in text.split(",")]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rns-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="openclip-vit-b16",
                   help="backbone preset, or a comma list run one after the other (default %(default)s)")
    p.add_argument("--checkpoint", default=None,
                   help="local backbone weights (dinov3txt-vitl16: a folder, or 'BACKBONE.pth,DINOTXT.pth')")
    p.add_argument("--random-weights", action="store_true",
                   help="build the full-size models untrained (compute cost only)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default %(default)s)")
    p.add_argument("--precision", default=None,
                   help="autocast of the backbone and of SAM 2: fp32, bf16, fp16 (default: fp32, or the "
                        "profile's for the backbone)")
    p.add_argument("--modes", default="patch", help="comma list of patch, region (default %(default)s)")
    p.add_argument("--sizes", default="640x480,1280x720", type=_parse_sizes, help="comma list of WIDTHxHEIGHT")
    p.add_argument("--repeats", type=int, default=5, help="timed frames per setting (default %(default)s)")
    p.add_argument("--classes", type=int, default=20, help="classes with text (default %(default)s)")
    p.add_argument("--exemplars", type=int, default=10,
                   help="support images, each annotating 4 classes (default %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="adapter steps (default: 700, or the profile's)")
    p.add_argument("--solver", default="fast", help="adapter solver: fast, plain, ... (default %(default)s)")
    p.add_argument("--sam-model", default="sam2.1-hiera-tiny", help="SAM 2 preset for region mode")
    p.add_argument("--sam-checkpoint", default=None, help="SAM 2 checkpoint (.pt)")
    p.add_argument("--points-per-side", type=int, default=16, help="SAM 2 point grid (paper: 32)")
    p.add_argument("--points-per-batch", type=int, default=0,
                   help="SAM 2 prompts per decoder call (default 0: 512 on CUDA, 64 on a CPU)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="auto",
                   help="profile, or a comma list run interleaved: auto (cuda on a GPU, else default), default, "
                        "cuda, cpu-fast (default %(default)s)")
    p.add_argument("--json", default=None, help="also write every row (all samples) to this JSON file")
    return p


def _build_memory(backbone, args, rng: np.random.Generator):
    """A memory with `args.classes` text classes and `args.exemplars` synthetic support images."""
    from rns_ros.core import Exemplar, SupportMemory, encode_exemplar

    memory = SupportMemory(dim=backbone.dim, device=str(backbone.device), backbone_identity=backbone.identity)
    names = [f"class {i}" for i in range(args.classes)]
    if args.random_weights:  # text from random weights means nothing, and no frame runs the text tower
        text = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((len(names), backbone.dim))).float(), dim=-1)
    else:
        text = backbone.encode_text(names)
    ids = [memory.add_class(n, text_feature=t) for n, t in zip(names, text)]
    for e in range(args.exemplars):
        image = rng.integers(0, 256, size=(360, 480, 3), dtype=np.uint8)
        labels = np.zeros((360, 480), np.int32)
        for q, cid in enumerate(rng.choice(ids, size=min(4, len(ids)), replace=False)):
            labels[(q // 2) * 180:(q // 2 + 1) * 180, (q % 2) * 240:(q % 2 + 1) * 240] = cid
        ex = Exemplar(image=image, labels=labels)
        feats, class_ids = encode_exemplar(backbone, ex)
        memory.add_image_features(feats, class_ids, exemplar=ex)
    return memory


def _ros_codec():
    """(decode, publish) callables over sensor_msgs/Image, or None where rclpy is not installed."""
    try:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from rns_ros.ros import conversions
    except ImportError:
        return None

    def encode_input(rgb: np.ndarray) -> Image:
        return conversions.rgb_to_image(rgb, Header())

    def publish(labels: np.ndarray, confidence: np.ndarray) -> None:
        conversions.labels_to_image(labels, Header())
        conversions.confidence_to_image(confidence, Header())

    return encode_input, conversions.image_to_rgb, publish


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


def run(args, on_row=None) -> list[dict]:
    """Rows of every backbone of the comma list in `args.backbone`, one model in memory at a time;
    `on_row(rows so far)` after every row."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.backbone.split(","):
        for row in _run_backbone(args, name.strip()):
            rows.append(dict(row, backbone=name))
            if on_row is not None:
                on_row(rows)
        gc.collect()  # the previous model's memory is freed before the next one is built
    return rows


def _pipeline(args, name: str, profile, mode: str, proposer, built: dict) -> dict:
    """backbone, memory, adapter config, precision and segmenter of backbone `name` under
    `profile`; the backbone and memory are built once per profile (kept in `built`) and reused
    across modes."""
    from rns_ros.core import AdapterConfig, Segmenter, TestTimeAdapter, build_backbone

    if profile.name not in built:
        precision, adapter_cfg = profile.apply(
            device=args.device, adapter=AdapterConfig(solver=args.solver, seed=args.seed))
        precision = args.precision or precision  # options given on the command line win over the profile
        if args.steps is not None:
            adapter_cfg = replace(adapter_cfg, steps=args.steps)
        kwargs = {"device": args.device, "checkpoint": args.checkpoint, "precision": precision}
        if args.random_weights:
            kwargs["random_weights"] = True
        if profile.resolution is not None:
            kwargs["resolution"] = profile.resolution
        backbone = build_backbone(name, **kwargs)
        memory = _build_memory(backbone, args, np.random.default_rng(args.seed))
        built[profile.name] = dict(backbone=backbone, memory=memory, adapter=adapter_cfg, precision=precision)
    parts = built[profile.name]
    segmenter = Segmenter(parts["backbone"], parts["memory"], TestTimeAdapter(parts["adapter"]),
                          proposer=proposer, mode=mode)
    return {**parts, "segmenter": segmenter}


def resolve_profiles(args) -> list:
    """The profiles of `--profile` on `--device`; "auto"'s choice is noted in args.profile_notes."""
    from rns_ros.core.profiles import resolve_profile

    profiles, args.profile_notes = [], []
    for name in args.profile.split(","):
        profile, note = resolve_profile(name.strip(), args.device)
        profiles.append(profile)
        if note:
            args.profile_notes.append(note)
    return profiles


def _proposers(args, profiles) -> list:
    """One SAM 2 proposer per profile (its SAM 2 precision: --precision, else the profile's), all
    sharing one model."""
    from rns_ros.core import ProposalConfig, RegionProposer

    base = ProposalConfig(model=args.sam_model, checkpoint=args.sam_checkpoint, device=args.device,
                          random_weights=args.random_weights and args.sam_model != "test-tiny",
                          points_per_side=args.points_per_side, points_per_batch=args.points_per_batch)
    proposers = []
    for profile in profiles:
        config = replace(profile.apply_proposals(base), **({"precision": args.precision} if args.precision else {}))
        proposers.append(RegionProposer(config, model=proposers[0].model if proposers else None))
    return proposers


def _run_backbone(args, name: str) -> Iterator[dict]:
    """One row per (mode, size, profile) of backbone `name`, each yielded as soon as it is
    measured; the profiles' frames interleaved."""
    from rns_ros.core.matmul_precision import allow_tf32

    profiles = resolve_profiles(args)
    built: dict = {}
    codec = _ros_codec()
    cuda = str(args.device).startswith("cuda")
    device = torch.device(args.device)
    synchronize = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    for mode in args.modes.split(","):
        proposers = _proposers(args, profiles) if mode == "region" else [None] * len(profiles)
        pipelines = [_pipeline(args, name, profile, mode, proposer, built)
                     for profile, proposer in zip(profiles, proposers)]
        for width, height in args.sizes:
            frame = np.random.default_rng([args.seed, width, height]).integers(0, 256, size=(height, width, 3),
                                                                                dtype=np.uint8)
            message = codec[0](frame) if codec else None
            samples = [{s: [] for s in STAGES} for _ in profiles]
            totals: list[list[float]] = [[] for _ in profiles]
            peaks = [0.0 for _ in profiles]
            queries = [None for _ in profiles]  # each profile's patch features of the frame
            for i in range(args.repeats + 1):  # frame 0 warms up caches and lazy model builds
                for k, pipeline in enumerate(pipelines):
                    if cuda:
                        allow_tf32(profiles[k].tf32)  # the frame under its profile's setting (process-wide)
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    image = codec[1](message) if codec else frame
                    t_decode = time.perf_counter() - t0
                    out = pipeline["segmenter"].segment(image)
                    t1 = time.perf_counter()
                    if i == 0:  # retrieval is timed alone on this frame's patch features
                        queries[k] = pipeline["backbone"].encode_image(image).flat()
                    synchronize()  # the search alone: not the frame's work still queued
                    t_r = time.perf_counter()
                    pipeline["memory"].search(queries[k], pipeline["adapter"].k)
                    synchronize()  # its kernels, not only their launches
                    t_retrieval = time.perf_counter() - t_r
                    t2 = time.perf_counter()
                    if codec:
                        codec[2](out.labels, out.confidence)
                    t_publish = time.perf_counter() - t2
                    if cuda:
                        peaks[k] = max(peaks[k], torch.cuda.max_memory_allocated() / 2**20)
                    if i == 0:
                        continue
                    stage_times = {"decode": t_decode, "retrieval": t_retrieval, "publish": t_publish,
                                   **{key: v for key, v in out.timings.items() if key in STAGES}}
                    for stage in STAGES:
                        samples[k][stage].append(stage_times.get(stage, float("nan")))
                    totals[k].append((t1 - t0) + t_publish)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            for k, profile in enumerate(profiles):
                yield {"mode": mode, "size": f"{width}x{height}", "profile": profile.name,
                       "precision": pipelines[k]["precision"], "steps": pipelines[k]["adapter"].steps,
                       "samples": samples[k], "totals": totals[k], "peak_rss_mb": peak,
                       "peak_cuda_mb": peaks[k] if cuda else None}


def _plain_rows_setting(rows: list[dict]) -> str:
    """Precision and steps of the rows without a profile note (the default profile's)."""
    plain = [r for r in rows if r["profile"] == "default"]
    return f"{plain[0]['precision']}, {plain[0]['steps']} steps" if plain else "profiles as noted per row"


def format_table(rows: list[dict], args) -> str:
    several = "," in args.backbone  # then a first column names each row's backbone
    lines = [("| backbone " if several else "") + "| mode | size | " + " | ".join(STAGES) + " | frame | fps | peak RSS MB |",
             ("|---" if several else "") + "|---|---|" + "---|" * (len(STAGES) + 3)]
    for r in rows:
        cells = []
        for s in STAGES:
            vals = [v for v in r["samples"][s] if v == v]  # drop NaN (stage not run)
            cells.append(f"{_percentile(vals, 50):.1f} / {_percentile(vals, 95):.1f}" if vals else "-")
        med = _percentile(r["totals"], 50)
        peak = f"{r['peak_rss_mb']:.0f}" + (f" (CUDA {r['peak_cuda_mb']:.0f})" if r["peak_cuda_mb"] else "")
        mode = r["mode"] if r["profile"] == "default" else f"{r['mode']}, {r['profile']} ({r['precision']}, {r['steps']} steps)"
        lines.append((f"| {r['backbone']} " if several else "") + f"| {mode} | {r['size']} | " + " | ".join(cells)
                     + f" | {med:.0f} / {_percentile(r['totals'], 95):.0f} | {1000.0 / med:.2f} | {peak} |")
    from rns_ros.core import AdapterConfig
    from rns_ros.core.adapter.fast import describe_execution

    device = args.device
    if str(device).startswith("cuda") and torch.cuda.is_available():
        device = torch.cuda.get_device_name(torch.device(device))
    adapter = describe_execution(AdapterConfig(solver=args.solver), str(args.device))[0]  # what ran, on CUDA
    header = (f"ms, median / p95 over {args.repeats} frames; backbone {args.backbone}"
              f"{' (random weights: compute cost only)' if args.random_weights else ''}; solver {args.solver} "
              f"({adapter}), {_plain_rows_setting(rows)}; {args.classes} classes, {args.exemplars} support images; "
              f"device {device}; {cpu_model()}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; "
              f"{''.join(n + '; ' for n in getattr(args, 'profile_notes', []))}load average "
              f"{args.load_before:.1f} at the start, {' '.join(f'{v:.1f}' for v in os.getloadavg())} (1/5/15 min) "
              f"at the end"
              f"{'; peak RSS is the process peak so far (the backbones ran in this order)' if several else ''}")
    return header + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeats < 1:
        print("rns-bench: --repeats must be >= 1", file=sys.stderr)
        return 2
    args.load_before = os.getloadavg()[0]

    def write_json(rows: list[dict]) -> None:
        if args.json:
            with open(args.json + ".tmp", "w") as out:
                json.dump({"table": format_table(rows, args), "rows": rows}, out, indent=1)
            os.replace(args.json + ".tmp", args.json)

    try:
        rows = run(args, on_row=write_json)
    except (ValueError, FileNotFoundError) as exc:
        print(f"rns-bench: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
