#!/usr/bin/env python
"""Support-memory scale: retrieval time, update time and memory as the bank grows (issue 6, item 4).

For each bank size M (default 1e3, 1e4, 1e5, 1e6 rows of d = 512) and each index of
`rns_ros.core.memory.retrieval.InnerProductIndex`:
  exact FAISS CPU (IndexIDMap2(IndexFlatIP)), torch matmul + top-k, and the approximate IVF option
  (converted once past its threshold, nprobe lists per query), plus the GPU backends when CUDA exists,
it times: building the index (one add of all M rows; IVF includes its one-off k-means training),
search of Q = 800 queries with k = 4 (median of repeats), inserting one exemplar (8 rows) and
removing it again (medians), the index's memory (vectors + ids + centroids; and the process RSS
growth), and recall@k of every backend against exact FAISS (fraction of the exact top-k ids found).

Synthetic, clustered unit vectors (features of one class are close, like per-image class features;
uniform random vectors would be a meaningless worst case for IVF). Prints a markdown table.

  OMP_NUM_THREADS=2 .venv/bin/python scripts/bench_support_scale.py            # ~3-4 min on 2 cores
  .venv/bin/python scripts/bench_support_scale.py --sizes 1000 10000 --repeats 3  # quick look
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not an install
from rns_ros.machine import cpu_model  # noqa: E402
from rns_ros.core.memory.retrieval import InnerProductIndex, IvfSettings, faiss_has_gpu


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def clustered_unit_vectors(n: int, d: int, centers: torch.Tensor, spread: float,
                           gen: torch.Generator) -> torch.Tensor:
    """normalise(center + spread * noise / sqrt(d)): cosine to the centre ~ 1 / sqrt(1 + spread^2)."""
    which = torch.randint(0, centers.shape[0], (n,), generator=gen)
    out = torch.empty(n, d)
    for start in range(0, n, 100_000):  # chunks keep the temporaries small at 1e6 rows
        stop = min(n, start + 100_000)
        noise = torch.randn(stop - start, d, generator=gen) * (spread / d ** 0.5)
        out[start:stop] = torch.nn.functional.normalize(centers[which[start:stop]] + noise, dim=1)
    return out


def timed(fn, repeats: int, sync=None) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    found, exact = found.cpu().numpy(), exact.cpu().numpy()
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact))
    return hits / exact.size


def bench_one(name: str, make, feats, queries, k, repeats, exact_ids, device) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    gc.collect()
    rss0 = rss_bytes()
    ids = torch.arange(feats.shape[0], dtype=torch.int64)
    t0 = time.perf_counter()
    index = make()
    index.add(ids, feats)
    if sync:
        sync()
    build = time.perf_counter() - t0
    rss = rss_bytes() - rss0
    q = queries.to(device)
    index.search(q, k)  # warm-up
    search, (scores, found) = timed(lambda: index.search(q, k), repeats, sync)
    extra = torch.nn.functional.normalize(torch.randn(8, feats.shape[1]), dim=1)
    extra_ids = torch.arange(8) + feats.shape[0] + 10
    insert_times, remove_times = [], []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        index.add(extra_ids, extra)
        insert_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.remove(extra_ids)
        remove_times.append(time.perf_counter() - t0)
    row = dict(index=name, build_s=build, search_ms=search * 1e3,
               insert_ms=statistics.median(insert_times) * 1e3,
               remove_ms=statistics.median(remove_times) * 1e3,
               index_mb=index.memory_bytes() / 2 ** 20, rss_mb=max(rss, 0) / 2 ** 20,
               recall=recall(found, exact_ids) if exact_ids is not None else 1.0, found=found.cpu())
    del index
    gc.collect()
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=800)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="search repeats (median); 1 at >= 1e6")
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--clusters", type=int, default=2000, help="synthetic classes")
    parser.add_argument("--spread", type=float, default=1.0, help="noise around each class centre")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        import faiss  # noqa: PLC0415

        faiss.omp_set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    centers = torch.nn.functional.normalize(torch.randn(args.clusters, args.dim, generator=gen), dim=1)
    queries = clustered_unit_vectors(args.queries, args.dim, centers, args.spread, gen)
    cpu = torch.device("cpu")
    devices = [cpu] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"machine: {cpu_model()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"data: clustered unit vectors, d={args.dim}, {args.clusters} clusters, spread {args.spread}; "
          f"Q={args.queries}, k={args.k}; IVF nlist=sqrt(M), nprobe={args.nprobe}\n")
    print("| M | index | build (s) | search 800 q (ms) | insert 8 rows (ms) | remove 8 rows (ms) "
          "| index MB | RSS growth MB | recall@k |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in args.sizes:
        feats = clustered_unit_vectors(m, args.dim, centers, args.spread, gen)
        repeats = 1 if m >= 1_000_000 else args.repeats
        backends = [("faiss flat (exact)", lambda: InnerProductIndex(args.dim, cpu, "faiss"), cpu),
                    ("torch matmul+topk", lambda: InnerProductIndex(args.dim, cpu, "torch"), cpu),
                    (f"faiss IVF nprobe {args.nprobe}",
                     lambda: InnerProductIndex(args.dim, cpu, "faiss", approximate_above=m,
                                               ivf=IvfSettings(nprobe=args.nprobe)), cpu)]
        if len(devices) > 1:
            backends.append(("torch (cuda)", lambda: InnerProductIndex(args.dim, "cuda", "torch"),
                             devices[1]))
            if faiss_has_gpu():
                backends.append(("faiss-gpu flat", lambda: InnerProductIndex(args.dim, "cuda", "faiss-gpu"),
                                 devices[1]))
        exact = None
        for name, make, device in backends:
            row = bench_one(name, make, feats, queries, args.k, repeats, exact, device)
            if exact is None:
                exact = row["found"]
            print(f"| {m:.0e} | {row['index']} | {row['build_s']:.2f} | {row['search_ms']:.1f} "
                  f"| {row['insert_ms']:.2f} | {row['remove_ms']:.2f} | {row['index_mb']:.0f} "
                  f"| {row['rss_mb']:.0f} | {row['recall']:.3f} |", flush=True)
        del feats
        gc.collect()


if __name__ == "__main__":
    main()
