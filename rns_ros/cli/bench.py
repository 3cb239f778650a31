"""`rns-bench`: per-stage latency of the whole frame pipeline, printed as a markdown table.

    rns-bench --random-weights                         # full-size ViT-B/16, compute only (no weights here)
    rns-bench --random-weights --modes patch,region --sam-model sam2.1-hiera-tiny --points-per-side 16
    rns-bench --backbone test-tiny --repeats 3          # smoke run of the benchmark itself
    rns-bench --random-weights --backbone openclip-vit-b16,dinov3txt-vitl16,siglip2-vitl16-512 --sizes 640x480
                                                       # several backbones in one run: one row each
    rns-bench --random-weights --sizes 640x480 --profile default,cpu-fast   # both profiles, frames interleaved
    rns-bench --random-weights --sizes 640x480 --profile cpu-fast --runtime torch,openvino,onnxruntime:int8
                                                       # runtimes (RUNTIME[:PRECISION]) interleaved, one row each
    rns-bench --random-weights --sizes 640x480 --profile cpu-fast --classes 1,10,100,1000   # cost vs classes

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
a run cut short keeps the rows it finished. So are several `--runtime`s (what computes the image
encoder, rns_ros.core.runtimes: `torch`, `onnxruntime`, `tensorrt`, `openvino`, or `auto` = the
profile's choice, each optionally `:PRECISION`) and several `--classes` counts (the same support
images). Every row also gets: `agree`, the share of pixels whose label equals that of the torch
fp32 pipeline of the same profile on the same frames (the frames are the package's sample photos,
resized: natural images), and the image encoder's GFLOP/s with its share of the CPU's peak (a
torch matmul on the same threads, fp32 for fp32 rows, bf16 for the others; printed above the
table). With `--random-weights` the numbers are compute cost only:
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

from rns_ros.cli.engine_log import engine_log_shown  # noqa: E402
from rns_ros.core.advice import CLI_SPELLING, explain  # noqa: E402
from rns_ros.machine import cpu_model  # noqa: E402

STAGES = ("decode", "features", "proposals", "retrieval", "adapter", "upsample", "publish")
PEAK_N = 2048  # side of the matrix product that measures the CPU's peak


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    return [_parse_size(s) for s in text.split(",")]


def _parse_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of positive class counts, e.g. 1,10,100")
    return counts


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
                   help="the image encoder's precision (and SAM 2's autocast): fp32, bf16, fp16, int8 (default: "
                        "fp32, or the profile's); a runtime's own :PRECISION wins")
    p.add_argument("--runtime", default="auto",
                   help="what computes the image encoder, or a comma list run interleaved: auto (the profile's), "
                        "torch, onnxruntime, tensorrt, openvino, each optionally :PRECISION, e.g. "
                        "torch,openvino:bf16,onnxruntime:int8 (default %(default)s)")
    p.add_argument("--onnx-model", default=None,
                   help="rns-export's folder for the runtimes (default: exported once into the cache)")
    p.add_argument("--modes", default="patch", help="comma list of patch, region (default %(default)s)")
    p.add_argument("--sizes", default="640x480,1280x720", type=_parse_sizes, help="comma list of WIDTHxHEIGHT")
    p.add_argument("--repeats", type=int, default=5, help="timed frames per setting (default %(default)s)")
    p.add_argument("--classes", type=_parse_counts, default=[20],
                   help="classes with text, or a comma list of counts run interleaved (default 20)")
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


def _build_memory(backbone, args, classes: int, rng: np.random.Generator):
    """A memory with `classes` text classes and `args.exemplars` synthetic support images."""
    from rns_ros.core import Exemplar, SupportMemory, encode_exemplar

    memory = SupportMemory(dim=backbone.dim, device=str(backbone.device), backbone_identity=backbone.identity)
    names = [f"class {i}" for i in range(classes)]
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


def _runtime_specs(text: str) -> list[tuple[str, str | None]]:
    """'torch,openvino:bf16' -> [("torch", None), ("openvino", "bf16")]; None = the profile's precision."""
    specs = []
    for item in text.split(","):
        runtime, _, precision = item.strip().partition(":")
        specs.append((runtime, precision or None))
    return specs


def _resolve(args, profile, runtime: str, precision: str | None):
    """(RuntimeChoice, precision) of a runtime spec under `profile`: a spec's own precision, else
    --precision, else the profile's for that runtime (options given on the command line win)."""
    choice = profile.runtime_for(args.device, runtime)
    return choice, precision or args.precision or profile.apply(device=args.device, runtime=choice.runtime)[0]


def _backbone(args, name: str, profile, runtime: str, precision: str | None, built: dict):
    """(backbone, precision, runtime) of backbone `name` under `profile` with `runtime` ("auto" = the
    profile's choice) in `precision` (None = the profile's, or --precision); built once per setting."""
    from rns_ros.core import build_backbone

    choice, precision = _resolve(args, profile, runtime, precision)
    key = (profile.name, choice.runtime, precision)
    if key not in built:
        print(f"rns-bench: {name}, profile {profile.name}: {'WARNING: ' if choice.fallback else ''}"
              f"{choice.reason}", file=sys.stderr)
        kwargs = {"device": args.device, "checkpoint": args.checkpoint, "precision": precision,
                  "runtime": choice.runtime, "onnx_model": args.onnx_model}
        if args.random_weights:
            kwargs["random_weights"] = True
        if profile.resolution is not None:
            kwargs["resolution"] = profile.resolution
        built[key] = build_backbone(name, **kwargs)
    return built[key], precision, choice.runtime


def _pipeline(args, name: str, setting: dict, mode: str, proposer, built: dict) -> dict:
    """backbone, memory, adapter config and segmenter of one setting (profile, runtime, precision,
    classes); backbones and memories are built once (kept in `built`) and reused across modes."""
    from rns_ros.core import AdapterConfig, Segmenter, TestTimeAdapter

    profile = setting["profile"]
    backbone, precision, runtime = _backbone(args, name, profile, setting["runtime"], setting["precision"], built)
    _, adapter_cfg = profile.apply(device=args.device, adapter=AdapterConfig(solver=args.solver, seed=args.seed))
    if args.steps is not None:
        adapter_cfg = replace(adapter_cfg, steps=args.steps)
    memory_key = ("memory", id(backbone), setting["classes"])
    if memory_key not in built:  # the same seed: every runtime gets the same classes and support images
        built[memory_key] = _build_memory(backbone, args, setting["classes"], np.random.default_rng(args.seed))
    memory = built[memory_key]
    segmenter = Segmenter(backbone, memory, TestTimeAdapter(adapter_cfg), proposer=proposer, mode=mode)
    return dict(backbone=backbone, memory=memory, adapter=adapter_cfg, precision=precision, runtime=runtime,
                segmenter=segmenter)


def _frames(width: int, height: int) -> list[np.ndarray]:
    """The package's sample photos resized to width x height (natural images, for the agreement)."""
    from importlib.resources import files

    from PIL import Image

    folder = files("rns_ros.ros.demo") / "sample_images"  # no ROS import: the package's __init__ is a docstring
    paths = sorted((p for p in folder.iterdir() if p.name.lower().endswith((".jpg", ".png"))), key=lambda p: p.name)
    return [np.asarray(Image.open(p).convert("RGB").resize((width, height), Image.BILINEAR)) for p in paths]


def _encoder_gflop(backbone, frame: np.ndarray) -> float:
    """GFLOP of the image encoder for one frame (torch's FLOP counter over the torch tower's windows)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    runtime, backbone.runtime = backbone.runtime, None
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # fused attention kernels are invisible to the counter:
    try:  # the plain MHA path and SDPA's math backend show it its matrix products
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            backbone.encode_image(frame)
    finally:
        backbone.runtime = runtime
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() / 1e9


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
    """One row per (mode, size, setting) of backbone `name`, each yielded as soon as it is measured;
    the settings' frames interleaved. A setting = (profile, runtime, precision, classes); each is
    compared with the torch fp32 pipeline of its profile and class count (built for that unless it
    is one of the rows)."""
    from rns_ros.core.matmul_precision import allow_tf32

    profiles = resolve_profiles(args)
    settings, seen = [], set()
    for index, profile in enumerate(profiles):
        for runtime, precision in _runtime_specs(args.runtime):
            choice, resolved = _resolve(args, profile, runtime, precision)
            for classes in args.classes:  # e.g. torch and torch:bf16 under cpu-fast: one row
                if (profile.name, choice.runtime, resolved, classes) not in seen:
                    seen.add((profile.name, choice.runtime, resolved, classes))
                    settings.append(dict(profile=profile, profile_index=index, runtime=runtime, precision=precision,
                                         classes=classes))
    built: dict = {}
    codec = _ros_codec()
    cuda = str(args.device).startswith("cuda")
    device = torch.device(args.device)
    synchronize = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    for mode in args.modes.split(","):
        proposers = _proposers(args, profiles) if mode == "region" else [None] * len(profiles)
        pipelines = [_pipeline(args, name, s, mode, proposers[s["profile_index"]], built) for s in settings]
        references = [_pipeline(args, name, dict(s, runtime="torch", precision="fp32"), mode,
                                proposers[s["profile_index"]], built) for s in settings]
        for width, height in args.sizes:
            frames = _frames(width, height)
            messages = [codec[0](f) for f in frames] if codec else frames
            gflop = {id(p["backbone"]): _encoder_gflop(p["backbone"], frames[0]) for p in pipelines}
            samples = [{s: [] for s in STAGES} for _ in settings]
            totals: list[list[float]] = [[] for _ in settings]
            peaks = [0.0 for _ in settings]
            agree = [[0, 0] for _ in settings]  # pixels equal to the fp32 reference, pixels compared
            reference_labels: dict = {}  # (id of the reference segmenter, frame index) -> labels
            queries = [None for _ in settings]  # each setting's patch features of the frame
            for i in range(args.repeats + 1):  # frame 0 warms up caches and lazy model builds
                f = i % len(frames)
                for k, pipeline in enumerate(pipelines):
                    if cuda:
                        allow_tf32(settings[k]["profile"].tf32)  # the frame under its profile's setting (process-wide)
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    image = codec[1](messages[f]) if codec else frames[f]
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
                    if i < len(frames):  # each frame's labels against the fp32 reference's, once
                        ref = references[k]
                        key = (id(ref["segmenter"]), f)
                        if key not in reference_labels:
                            reference_labels[key] = (out.labels if ref["backbone"] is pipeline["backbone"] else
                                                     ref["segmenter"].segment(frames[f]).labels)
                        agree[k][0] += int((out.labels == reference_labels[key]).sum())
                        agree[k][1] += out.labels.size
                    if i == 0:
                        continue
                    stage_times = {"decode": t_decode, "retrieval": t_retrieval, "publish": t_publish,
                                   **{key: v for key, v in out.timings.items() if key in STAGES}}
                    for stage in STAGES:
                        samples[k][stage].append(stage_times.get(stage, float("nan")))
                    totals[k].append((t1 - t0) + t_publish)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            for k, setting in enumerate(settings):
                p = pipelines[k]
                yield {"mode": mode, "size": f"{width}x{height}", "profile": setting["profile"].name,
                       "runtime": p["runtime"], "precision": p["precision"], "classes": setting["classes"],
                       "encoder": p["backbone"].runtime.describe() if p["backbone"].runtime else f"torch {p['precision']}",
                       "steps": p["adapter"].steps, "samples": samples[k], "totals": totals[k], "peak_rss_mb": peak,
                       "agreement": agree[k][0] / max(agree[k][1], 1), "encoder_gflop": gflop[id(p["backbone"])],
                       "peak_cuda_mb": peaks[k] if cuda else None}


def matmul_peak_gflops(dtype: torch.dtype, n: int = PEAK_N, repeats: int = 5) -> float:
    """GFLOP/s of an n x n matrix product in `dtype` on torch's threads (the best of `repeats`)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up (oneDNN picks its kernel)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _plain_rows_setting(rows: list[dict]) -> str:
    """Precision and steps of the rows without a profile note (the default profile's)."""
    plain = [r for r in rows if r["profile"] == "default"]
    return f"{plain[0]['precision']}, {plain[0]['steps']} steps" if plain else "profiles as noted per row"


def format_table(rows: list[dict], args) -> str:
    several = "," in args.backbone  # then a column names each row's backbone
    runtimes = "," in args.runtime or args.runtime != "auto"  # then the first column names the encoder
    counts = len(args.classes) > 1
    peaks = getattr(args, "peaks", None)
    lead = ("| runtime " if runtimes else "") + ("| backbone " if several else "")
    lines = [lead + "| mode | size | " + ("classes | " if counts else "") + " | ".join(STAGES)
             + " | frame | fps | agree | encoder GFLOP/s | peak RSS MB |",
             ("|---" * (runtimes + several)) + "|---|---|" + ("---|" if counts else "") + "---|" * (len(STAGES) + 5)]
    for r in rows:
        cells = []
        for s in STAGES:
            vals = [v for v in r["samples"][s] if v == v]  # drop NaN (stage not run)
            cells.append(f"{_percentile(vals, 50):.1f} / {_percentile(vals, 95):.1f}" if vals else "-")
        med = _percentile(r["totals"], 50)
        peak = f"{r['peak_rss_mb']:.0f}" + (f" (CUDA {r['peak_cuda_mb']:.0f})" if r["peak_cuda_mb"] else "")
        mode = r["mode"] if r["profile"] == "default" else f"{r['mode']}, {r['profile']} ({r['precision']}, {r['steps']} steps)"
        features = [v for v in r["samples"]["features"] if v == v]
        rate = r["encoder_gflop"] / (_percentile(features, 50) / 1000.0) if features else float("nan")
        if peaks:
            ceiling = peaks["fp32"] if r["precision"] == "fp32" else peaks["bf16"]
            rate_cell = f"{rate:.3g} ({100 * rate / ceiling:.0f} %)"
        else:
            rate_cell = f"{rate:.3g}"
        lines.append((f"| {r['runtime']} {r['precision']} " if runtimes else "") + (f"| {r['backbone']} " if several else "")
                     + f"| {mode} | {r['size']} | " + (f"{r['classes']} | " if counts else "") + " | ".join(cells)
                     + f" | {med:.0f} / {_percentile(r['totals'], 95):.0f} | {1000.0 / med:.2f}"
                     + f" | {100 * r['agreement']:.2f} % | {rate_cell} | {peak} |")
    from rns_ros.core import AdapterConfig
    from rns_ros.core.adapter.fast import describe_execution

    device = args.device
    if str(device).startswith("cuda") and torch.cuda.is_available():
        device = torch.cuda.get_device_name(torch.device(device))
    adapter = describe_execution(AdapterConfig(solver=args.solver), str(args.device))[0]  # what ran, on CUDA
    header = (f"ms, median / p95 over {args.repeats} frames; backbone {args.backbone}"
              f"{' (random weights: compute cost only)' if args.random_weights else ''}; solver {args.solver} "
              f"({adapter}), {_plain_rows_setting(rows)}; {','.join(str(c) for c in args.classes)} classes, "
              f"{args.exemplars} support images; device {device}; {cpu_model()}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; "
              f"{''.join(n + '; ' for n in getattr(args, 'profile_notes', []))}load average "
              f"{args.load_before:.1f} at the start, {' '.join(f'{v:.1f}' for v in os.getloadavg())} (1/5/15 min) "
              f"at the end; agree = pixels labelled as by torch fp32 of the same profile"
              + (f"; CPU peak (torch {PEAK_N}^3 matmul, same threads): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 "
                 f"{peaks['bf16']:.0f} GFLOP/s; encoder GFLOP/s (% of the fp32 peak for fp32 rows, of the bf16 "
                 "peak for the others; int8 rows too: AMX-INT8's own peak, twice bf16's on paper, is not measured, torch's "
                 "int8 matmul does not use AMX here)" if peaks else "")
              + f"{'; peak RSS is the process peak so far (the backbones ran in this order)' if several else ''}")
    return header + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeats < 1:
        print("rns-bench: --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    args.load_before = os.getloadavg()[0]
    args.peaks = None if str(args.device).startswith("cuda") else {
        "fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}

    def write_json(rows: list[dict]) -> None:
        if args.json:
            with open(args.json + ".tmp", "w") as out:
                json.dump({"table": format_table(rows, args), "rows": rows, "cpu_peak_gflops": args.peaks}, out,
                          indent=1)
            os.replace(args.json + ".tmp", args.json)

    try:
        with engine_log_shown("rns-bench"):
            rows = run(args, on_row=write_json)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"rns-bench: {explain(exc, CLI_SPELLING)}", file=sys.stderr)
        return 2
    print(format_table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
