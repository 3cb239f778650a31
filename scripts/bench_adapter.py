#!/usr/bin/env python3
"""Benchmark of the test-time adapter: plain reference loop vs fast solver vs the speed options.

Times the adapter's training + prediction for one built problem, and separately the retrieval +
problem building that every solver shares (so the end-to-end ratio is printed too), on a synthetic
problem of realistic size (default: N = 800 queries, ~500 training rows, d = 512,
C = 20; `--hard`: noisy features with partial visual and textual support, where approximations
show; synthetic features, NOT a quality measure), interleaving the solvers repetition by
repetition so that a busy machine slows them alike. Prints a markdown table: median and p95 wall
time per solver, median CPU time of the process (steadier than wall time on a shared machine),
speed-up over the plain loop (ratios of medians, measured in this one run), and the agreement
(identical argmax, max |dp|) of every solver with the plain loop and with the default.

    .venv/bin/python scripts/bench_adapter.py            # about 1-2 minutes on a 2-core CPU
    .venv/bin/python scripts/bench_adapter.py --hard     # noise 1.5, half the classes without exemplars, 40% without text
    .venv/bin/python scripts/bench_adapter.py --sweep    # agreement only, on every hard scenario (synthetic.HARD_SCENARIOS)
    .venv/bin/python scripts/bench_adapter.py --repeats 3 --threads 2
    .venv/bin/python scripts/bench_adapter.py --device cuda --json out.json   # the solvers on a GPU; rows as JSON too
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy

import torch  # noqa: E402

from rns_ros.core.adapter.config import AdapterConfig  # noqa: E402
from rns_ros.core.adapter.test_time import TestTimeAdapter, predict_from_problem  # noqa: E402
from rns_ros.core.adapter.options import solve_fast_batched  # noqa: E402
from rns_ros.core.adapter.synthetic import HARD_SCENARIOS, SyntheticScenario, build_scenario  # noqa: E402
from rns_ros.core.adapter.fast import describe_execution, refresh_interval, subspace_rank  # noqa: E402
from rns_ros.machine import cpu_model  # noqa: E402


def solvers(threads: int = 1) -> dict[str, AdapterConfig]:
    """Name -> config. "plain" is the reference, "fast" the default; the rest are options. Every
    solver runs on `threads` CPU threads (the fast ones through cpu_threads, else they would step on
    their default single thread while the plain loop had `threads`)."""
    configs = {
        "plain (reference loop)": AdapterConfig(solver="plain"),
        "fast (default: exact steps)": AdapterConfig(),
        "fast, exact steps as torch ops (fast_kernel='torch')": AdapterConfig(fast_kernel="torch"),
        "option: subspace steps (fast_subspace=True)": AdapterConfig(fast_subspace=True),
        "option: subspace steps as torch ops": AdapterConfig(fast_subspace=True, fast_kernel="torch"),
        "option: 200 steps": AdapterConfig(steps=200),
        "option: 100 steps": AdapterConfig(steps=100),
        "option: lr 0.01, 140 steps": AdapterConfig(lr=0.01, steps=140),
        "option: L-BFGS, 30 iterations": AdapterConfig(solver="lbfgs", lbfgs_iterations=30),
    }
    return {name: replace(config, cpu_threads=threads) for name, config in configs.items()}


def thread_table(problem, queries, repeats: int, counts=(1, 2)) -> None:
    """The exact default against the plain loop at 1 and 2 threads, interleaved in one run: the
    fast solver on the same threads as the plain loop, and as shipped (cpu_threads=1 whatever
    torch's count)."""
    variants = {"plain": lambda n: AdapterConfig(solver="plain"),
                "fast, same threads": lambda n: AdapterConfig(cpu_threads=n),
                "fast as shipped (cpu_threads=1)": lambda n: AdapterConfig()}
    times = {(n, name): [] for n in counts for name in variants}
    before = torch.get_num_threads()
    try:
        for _ in range(repeats):
            for n in counts:
                torch.set_num_threads(n)
                for name, config in variants.items():
                    start = time.perf_counter()
                    predict_from_problem(problem, queries, config(n))
                    times[(n, name)].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    median = {key: statistics.median(v) for key, v in times.items()}
    print(f"\nThreads (torch's count for the plain loop; {repeats} interleaved repetitions, load average "
          f"{os.getloadavg()[0]:.1f}):\n")
    print("| threads | plain ms | fast, same threads ms | plain / fast | fast as shipped (1 thread) ms | plain / shipped |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        plain, same, shipped = (median[(n, name)] for name in variants)
        print(f"| {n} | {1e3 * plain:.0f} | {1e3 * same:.0f} | {plain / same:.1f}x | {1e3 * shipped:.0f} | "
              f"{plain / shipped:.1f}x |")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def agreement(probs: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(share of identical argmax, max |dp|); on the CPU whichever device the solvers ran on."""
    probs, reference = probs.cpu(), reference.cpu()
    return float((probs.argmax(1) == reference.argmax(1)).double().mean()), float((probs - reference).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per solver")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of every solver (1: steadiest on a shared machine); the thread "
                             "table after the main one always compares 1 and 2")
    parser.add_argument("--no-thread-table", action="store_true", help="skip the 1-vs-2-threads table")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=800)
    parser.add_argument("--support-per-class", type=int, default=60)
    parser.add_argument("--batch", type=int, default=4, help="frames per batch for the batching option")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=None, help="feature noise (synthetic.py's default: 0.9)")
    parser.add_argument("--visual-fraction", type=float, default=None, help="share of classes with exemplars (1.0)")
    parser.add_argument("--text-fraction", type=float, default=None, help="share of classes with text (1.0)")
    parser.add_argument("--hard", action="store_true",
                        help="the hard scenario of issue 14: noise 1.5, visual 0.5, text 0.6 (explicit values win)")
    parser.add_argument("--skip", default="", help="comma list of solver-name substrings not to run (e.g. 'L-BFGS')")
    parser.add_argument("--json", default=None, help="also write the rows, machine and problem to this JSON file")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of timings: agreement with the plain loop of the default, its torch "
                             "execution, the subspace option and the cpu-fast profile's adapter on every hard scenario")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N: where the solvers run (the problem is built on the CPU, "
                             "then moved; the shared row is measured on the CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def on_device(queries, problem):
        moved = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in problem.__dict__.items()}
        return queries.to(device), problem.__class__(**moved)

    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]
    if args.sweep:
        return sweep(torch.device(args.device))

    def given_or(value, hard, default):  # an explicit value wins, even one equal to the default
        return value if value is not None else (hard if args.hard else default)

    spec = SyntheticScenario(num_classes=args.classes, dim=args.dim, num_queries=args.queries,
                             support_per_class=args.support_per_class, seed=args.seed,
                             noise=given_or(args.noise, 1.5, SyntheticScenario.noise),
                             visual_fraction=given_or(args.visual_fraction, 0.5, 1.0),
                             text_fraction=given_or(args.text_fraction, 0.6, 1.0))
    raw_queries, memory = build_scenario(spec, index_backend="auto")
    queries, problem = on_device(*TestTimeAdapter().build_problem(raw_queries, memory))
    skipped = [word for word in args.skip.split(",") if word]
    configs = {name: config for name, config in solvers(args.threads).items()
               if name == "plain (reference loop)" or name.startswith("fast (default")
               or not any(word in name for word in skipped)}
    frames = [torch.nn.functional.normalize(raw_queries + 0.02 * torch.randn(
        raw_queries.shape, generator=torch.Generator().manual_seed(i)), dim=1) for i in range(args.batch)]
    frame_problems = [on_device(*TestTimeAdapter().build_problem(f, memory)) for f in frames]
    batch_config = AdapterConfig(fast_subspace=False)

    def batched():
        solved = solve_fast_batched([p for _, p in frame_problems], batch_config)
        return [torch.softmax(q @ w.T + b, dim=1) for (q, _), (w, b) in zip(frame_problems, solved)]

    # warm-up, and the outputs compared below (torch.optim imports torch._dynamo: seconds, once)
    outputs = {name: predict_from_problem(problem, queries, config) for name, config in configs.items()}
    shared_name = "shared by all: retrieval + problem building"
    batch_name = f"option: {args.batch} frames batched (exact steps), per frame"
    run_batch = not any(word in batch_name for word in skipped)
    batched_out = batched() if run_batch else None
    times: dict[str, list[float]] = {name: [] for name in [shared_name, *configs] + ([batch_name] if run_batch else [])}
    cpu_times: dict[str, list[float]] = {name: [] for name in times}

    def timed(name, call, frames_per_call=1):
        synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        synchronize()
        times[name].append((time.perf_counter() - wall) / frames_per_call)
        cpu_times[name].append((time.process_time() - cpu) / frames_per_call)

    for _ in range(args.repeats):  # interleaved: a busy machine slows every solver alike
        timed(shared_name, lambda: TestTimeAdapter().build_problem(raw_queries, memory))
        for name, config in configs.items():
            timed(name, lambda: predict_from_problem(problem, queries, config))
        if run_batch:
            timed(batch_name, batched, args.batch)

    plain_name, fast_name = "plain (reference loop)", "fast (default: exact steps)"
    median = {name: statistics.median(v) for name, v in times.items()}
    cpu_median = {name: statistics.median(v) for name, v in cpu_times.items()}
    cpu = cpu_model()
    fast_config, subspace_config = configs[fast_name], AdapterConfig(fast_subspace=True)
    execution = describe_execution(fast_config, str(device))[0]
    if device.type == "cuda":
        cpu += f", GPU {torch.cuda.get_device_name(device)}"
    width = -(-(args.dim + 1) // 8) * 8
    exact_flops = 2 * 2 * args.classes * problem.num_rows * width * fast_config.steps  # two matmuls per step
    machine = (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s); "
               f"load average at start {load_at_start:.1f}, at end {os.getloadavg()[0]:.1f}")
    scenario = (f"N = {queries.shape[0]} queries, M = {problem.num_rows} training rows, d = {args.dim}, "
                f"C = {args.classes}, noise {spec.noise}, visual {spec.visual_fraction}, text {spec.text_fraction}, "
                f"700 steps")
    print(f"Machine: {machine}")
    print(f"Problem: {scenario}; default: {execution}, its two matmuls per step at "
          f"{exact_flops / median[fast_name] / 1e9:.0f} GFLOP/s (whole solve); subspace option: rank "
          f"{subspace_rank(problem, subspace_config)}, exact refresh every {refresh_interval(subspace_config)} "
          f"steps; {args.repeats} interleaved repetitions. Times: training + prediction given the built "
          f"problem; end to end adds the shared row.\n")
    print("| solver | wall median ms | wall p95 ms | CPU median ms | speed-up vs plain: wall / CPU "
          "| end to end: wall / CPU | vs plain: same argmax / max abs dp | vs default: same argmax / max abs dp |")
    print("|---|---|---|---|---|---|---|---|")
    shared, shared_cpu = median[shared_name], cpu_median[shared_name]
    rows = []
    for name, values in times.items():
        row = {"solver": name, "wall_median_ms": 1e3 * median[name], "wall_p95_ms": 1e3 * percentile(values, 0.95),
               "cpu_median_ms": 1e3 * cpu_median[name]}
        cells = f"| {name} | {row['wall_median_ms']:.0f} | {row['wall_p95_ms']:.0f} | {row['cpu_median_ms']:.0f} | "
        if name == shared_name:
            rows.append(row)
            print(cells + "| | | |")
            continue
        if name == batch_name:
            frame_refs = [predict_from_problem(p, q, configs[plain_name]) for q, p in frame_problems]
            frame_fast = [predict_from_problem(p, q, configs[fast_name]) for q, p in frame_problems]
            vs_plain = [agreement(o, r) for o, r in zip(batched_out, frame_refs)]
            vs_default = [agreement(o, r) for o, r in zip(batched_out, frame_fast)]
        else:
            vs_plain, vs_default = [agreement(outputs[name], outputs[plain_name])], [agreement(outputs[name], outputs[fast_name])]
        row.update(speedup_wall=median[plain_name] / median[name],
                   end_to_end_wall=(shared + median[plain_name]) / (shared + median[name]),
                   same_argmax_vs_plain=min(a for a, _ in vs_plain), max_dp_vs_plain=max(d for _, d in vs_plain),
                   same_argmax_vs_default=min(a for a, _ in vs_default), max_dp_vs_default=max(d for _, d in vs_default))
        rows.append(row)
        print(cells + f"{row['speedup_wall']:.1f}x / {cpu_median[plain_name] / cpu_median[name]:.1f}x | "
              f"{row['end_to_end_wall']:.1f}x / "
              f"{(shared_cpu + cpu_median[plain_name]) / (shared_cpu + cpu_median[name]):.1f}x | "
              f"{format_agreement(vs_plain)} | {format_agreement(vs_default)} |")
    if device.type == "cpu" and not args.no_thread_table:
        thread_table(problem, queries, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "device": str(device), "problem": scenario,
                                               "default_execution": execution, "rows": rows}, indent=2) + "\n")


def sweep(device: torch.device) -> None:
    """One row per hard scenario: agreement of each variant with the plain loop (same start)."""
    from rns_ros.core.profiles import get_profile

    variants = {"default (exact)": AdapterConfig(), "exact, torch ops": AdapterConfig(fast_kernel="torch"),
                "subspace option": AdapterConfig(fast_subspace=True),
                "cpu-fast profile (140 steps, lr 0.01)": get_profile("cpu-fast").adapter_config()}
    print(f"Agreement with the plain loop (same seed and start), same argmax / max abs dp; load average "
          f"{os.getloadavg()[0]:.1f}; device {device}\n")
    print("| C (in image) | noise | visual / text share | support per class | d | N | M rows | " + " | ".join(variants) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(variants))
    worst = {name: (1.0, 0.0) for name in variants}
    for spec in HARD_SCENARIOS:
        raw, memory = build_scenario(spec)
        queries, problem = TestTimeAdapter().build_problem(raw.to(device), memory)
        plain = predict_from_problem(problem, queries, AdapterConfig(solver="plain", seed=spec.seed))
        cells = []
        for name, config in variants.items():
            same, dp = agreement(predict_from_problem(problem, queries, replace(config, seed=spec.seed)), plain)
            worst[name] = (min(worst[name][0], same), max(worst[name][1], dp))
            cells.append(f"{100 * same:.2f}% / {dp:.1e}")
        print(f"| {spec.num_classes} ({spec.classes_in_image}) | {spec.noise} | {spec.visual_fraction} / "
              f"{spec.text_fraction} | {spec.support_per_class} | {spec.dim} | {spec.num_queries} | {problem.num_rows} | "
              + " | ".join(cells) + " |")
    print("| **worst** | | | | | | | " + " | ".join(f"**{100 * a:.2f}% / {d:.1e}**" for a, d in worst.values()) + " |")


def format_agreement(pairs: list[tuple[float, float]]) -> str:
    text = ", ".join(f"{100 * same:.2f}% / {dp:.1e}" for same, dp in pairs)
    return text if len(pairs) == 1 else "per frame: " + text


if __name__ == "__main__":
    main()
