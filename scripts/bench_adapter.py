#!/usr/bin/env python3
"""Benchmark of the test-time adapter: plain reference loop vs fast solver vs the speed options.

Times `TestTimeAdapter.predict` end to end (retrieval, problem building, training, prediction) on
a synthetic problem of realistic size (default: N = 800 queries, ~500 training rows, d = 512,
C = 20; synthetic features, NOT a quality measure), interleaving the solvers repetition by
repetition so that a busy machine slows them alike. Prints a markdown table: median and p95 wall
time per solver, median CPU time of the process (steadier than wall time on a shared machine),
speed-up over the plain loop (ratios of medians, measured in this one run), and the agreement
(identical argmax, max |dp|) of every solver with the plain loop and with the default.

    .venv/bin/python scripts/bench_adapter.py            # about 1-2 minutes on a 2-core CPU
    .venv/bin/python scripts/bench_adapter.py --repeats 3 --threads 2
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from rns_ros.core.adapter import AdapterConfig, TestTimeAdapter  # noqa: E402
from rns_ros.core.adapter_synthetic import SyntheticScenario, build_scenario  # noqa: E402
from rns_ros.core.fast_adapter import effective_rank, refresh_interval  # noqa: E402


def solvers() -> dict[str, AdapterConfig]:
    """Name -> config. "plain" is the reference, "fast" the default; the rest are options."""
    return {
        "plain (reference loop)": AdapterConfig(solver="plain"),
        "fast (default)": AdapterConfig(),
        "fast, exact steps (fast_rank=0)": AdapterConfig(fast_rank=0),
        "option: 200 steps": AdapterConfig(steps=200),
        "option: 100 steps": AdapterConfig(steps=100),
        "option: lr 0.01, 140 steps": AdapterConfig(lr=0.01, steps=140),
        "option: L-BFGS, 30 iterations": AdapterConfig(solver="lbfgs", lbfgs_iterations=30),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def agreement(probs: torch.Tensor, reference: torch.Tensor) -> str:
    same = float((probs.argmax(1) == reference.argmax(1)).double().mean())
    return f"{100 * same:.2f}% / {float((probs - reference).abs().max()):.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per solver")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: steadiest on a shared machine; same for all solvers)")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=800)
    parser.add_argument("--support-per-class", type=int, default=60)
    parser.add_argument("--batch", type=int, default=4, help="frames per batch for the batching option")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = SyntheticScenario(num_classes=args.classes, dim=args.dim, num_queries=args.queries,
                             support_per_class=args.support_per_class, seed=args.seed)
    queries, memory = build_scenario(spec)
    _, problem = TestTimeAdapter().build_problem(queries, memory)
    configs = solvers()
    adapters = {name: TestTimeAdapter(config) for name, config in configs.items()}
    frames = [torch.nn.functional.normalize(queries + 0.02 * torch.randn(
        queries.shape, generator=torch.Generator().manual_seed(i)), dim=1) for i in range(args.batch)]
    batch_adapter = TestTimeAdapter(AdapterConfig(fast_rank=0))

    outputs: dict[str, torch.Tensor] = {}
    for name, adapter in adapters.items():  # warm-up (torch.optim imports torch._dynamo: seconds)
        outputs[name] = adapter.predict(queries, memory)
    batched_out = batch_adapter.predict_many(frames, memory)
    batch_name = f"option: {args.batch} frames batched (exact steps), per frame"
    times: dict[str, list[float]] = {name: [] for name in [*adapters, batch_name]}
    cpu_times: dict[str, list[float]] = {name: [] for name in times}

    def timed(name, call, frames_per_call=1):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        times[name].append((time.perf_counter() - wall) / frames_per_call)
        cpu_times[name].append((time.process_time() - cpu) / frames_per_call)

    for _ in range(args.repeats):
        for name, adapter in adapters.items():
            timed(name, lambda: adapter.predict(queries, memory))
        timed(batch_name, lambda: batch_adapter.predict_many(frames, memory), args.batch)

    plain_name, fast_name = "plain (reference loop)", "fast (default)"
    plain_median = statistics.median(times[plain_name])
    plain_cpu = statistics.median(cpu_times[plain_name])
    frame_refs = [adapters[plain_name].predict(f, memory) for f in frames]
    frame_fast = [adapters[fast_name].predict(f, memory) for f in frames]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    fast_config = configs[fast_name]
    print(f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s); "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"Problem: N = {queries.shape[0]} queries, M = {problem.num_rows} training rows, "
          f"d = {args.dim}, C = {args.classes}, 700 steps; fast default: rank "
          f"{effective_rank(problem, fast_config)}, exact refresh every {refresh_interval(fast_config)} steps; "
          f"{args.repeats} interleaved repetitions\n")
    print("| solver | wall median ms | wall p95 ms | CPU median ms | speed-up vs plain, wall / CPU "
          "| vs plain: same argmax / max abs dp | vs default: same argmax / max abs dp |")
    print("|---|---|---|---|---|---|---|")
    for name, values in times.items():
        if name == batch_name:
            vs_plain = " ".join(agreement(o, r) for o, r in zip(batched_out, frame_refs))
            vs_default = " ".join(agreement(o, r) for o, r in zip(batched_out, frame_fast))
            vs_plain, vs_default = f"per frame: {vs_plain}", f"per frame: {vs_default}"
        else:
            vs_plain = agreement(outputs[name], outputs[plain_name])
            vs_default = agreement(outputs[name], outputs[fast_name])
        median, cpu = statistics.median(values), statistics.median(cpu_times[name])
        print(f"| {name} | {1e3 * median:.0f} | {1e3 * percentile(values, 0.95):.0f} | {1e3 * cpu:.0f} | "
              f"{plain_median / median:.1f}x / {plain_cpu / cpu:.1f}x | {vs_plain} | {vs_default} |")


if __name__ == "__main__":
    main()
