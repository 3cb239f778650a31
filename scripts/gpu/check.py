#!/usr/bin/env python3
"""The GPU check of issue 14, driven stage by stage within a time budget (scripts/gpu/check.sh
installs the carried wheels first, then runs this). Every stage is a subprocess with its own
timeout, so a hang or a crash costs that stage only; the report is rewritten after every stage, so
a run cut short still leaves what it measured. Output (to --out, default $OUT, else
output/gpu-check): report.md (the markdown report, also printed), report.json, check.log (every
stage's full output).

Stages, in order of importance: env (versions, device, ROS-free import), gpu-tests (the
`gpu`-marked tests), adapter (scripts/bench_adapter.py: plain vs fast, agreement), adapter-hard
(the same on the noisy partial-support problem), patch-fp32/patch-bf16 and region-fp32/region-bf16
(rns-bench, random-weight ViT-B/16 and SAM 2.1 hiera-L 32x32 points, 640x480 and 1280x720),
core-tests (the CPU-side core tests on this machine's Python and torch, with what time is left).
`--quick` (the CPU dry run, a test of its own) runs the same stages on the tiny test models.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOALS = {"patch_fps": 30.0, "adapter_ms": 10.0, "region_fps": 3.0}  # 640x480, issue 14


def stages(device: str, quick: bool, scratch: Path) -> list[dict]:
    """name, argv, cap (seconds at most), json (a file the stage writes, read into the report)."""
    py = sys.executable
    if quick:
        adapter = ["--classes", "6", "--dim", "64", "--queries", "200", "--repeats", "1"]
        bench = ["--backbone", "test-tiny", "--sam-model", "test-tiny", "--points-per-side", "4", "--repeats", "1",
                 "--classes", "4", "--exemplars", "2", "--steps", "100", "--threads", "1"]
        core = ["test/core/test_profiles.py"]
    else:
        adapter = ["--repeats", "5"]
        bench = ["--random-weights", "--sam-model", "sam2.1-hiera-large", "--points-per-side", "32",
                 "--points-per-batch", "64"]
        core = ["test/core", "test/test_bench.py", "-m", "not gpu"]
        if _has_module("xdist"):
            core += ["-n", "8"]
    pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"]
    result = [
        dict(name="env", argv=[py, str(Path(__file__).with_name("env_report.py")), device], cap=90),
        dict(name="gpu-tests", argv=pytest + ["-m", "gpu", "test/core", "test/test_bench.py"], cap=150),
        dict(name="adapter", argv=[py, "scripts/bench_adapter.py", "--device", device, *adapter,
                                   "--json", str(scratch / "adapter.json")], cap=120, json="adapter.json"),
        dict(name="adapter-hard", argv=[py, "scripts/bench_adapter.py", "--device", device, "--hard", *adapter,
                                        "--skip", "L-BFGS,batched,steps", "--json", str(scratch / "adapter-hard.json")],
             cap=90, json="adapter-hard.json"),
    ]
    for mode in ("patch", "region"):
        for precision in ("fp32", "bf16"):
            repeats = [] if quick else ["--repeats", "10" if mode == "patch" else "3"]
            name = f"{mode}-{precision}"
            result.append(dict(name=name, argv=[py, "-m", "rns_ros.cli.bench", "--device", device, "--modes", mode,
                                                "--precision", precision, "--sizes", "640x480,1280x720", *bench,
                                                *repeats, "--json", str(scratch / f"{name}.json")],
                               cap=120 if mode == "patch" else 180, json=f"{name}.json"))
    result.append(dict(name="core-tests", argv=pytest + core, cap=300))
    return result


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def run_stage(stage: dict, timeout: float, log) -> dict:
    """Run one stage; its record: status (ok, failed, timeout, skipped), seconds, output tail."""
    log.write(f"\n===== {stage['name']}: {' '.join(stage['argv'])} (timeout {timeout:.0f} s)\n")
    log.flush()
    start = time.monotonic()
    try:
        done = subprocess.run(stage["argv"], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        output, status = done.stdout + done.stderr, "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        output += (expired.stderr or b"").decode(errors="replace") if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        status = f"timeout after {timeout:.0f} s"
    log.write(output)
    log.flush()
    return {"name": stage["name"], "status": status, "seconds": round(time.monotonic() - start, 1),
            "output": output}


def pytest_summary(output: str) -> dict:
    """Counts of the last pytest summary line, and the failed test ids."""
    counts = {}
    lines = [line for line in output.splitlines() if re.search(r"\b(passed|failed|skipped|error|deselected)\b", line)
             and " in " in line]
    if lines:
        for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", lines[-1]):
            counts[word] = int(number)
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in output.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    skips = sorted({line.split(": ", 1)[-1] for line in output.splitlines() if line.startswith("SKIPPED")})
    return {"counts": counts, "failed": failed, "skip_reasons": skips}


def fps_row(rows: list[dict], size: str) -> dict | None:
    return next((r for r in rows if r["size"] == size), None)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def pipeline_goal(rows: list[dict] | None, target: float, what: str) -> dict:
    row = fps_row(rows or [], "640x480")
    if row is None or not row["totals"]:
        return {"goal": what, "target": f">= {target:g} frames/s", "measured": "not measured", "met": None}
    frame_ms = 1e3 * median(row["totals"])
    stage_ms = {s: 1e3 * median([v for v in vals if v == v]) for s, vals in row["samples"].items()
                if any(v == v for v in vals)}
    slowest = max(stage_ms, key=stage_ms.get)
    fps = 1e3 / frame_ms
    return {"goal": what, "target": f">= {target:g} frames/s", "measured": f"{fps:.1f} frames/s ({frame_ms:.0f} ms)",
            "met": fps >= target, "held_back_by": f"{slowest} {stage_ms[slowest]:.0f} ms of {frame_ms:.0f} ms"}


def adapter_goal(data: dict | None) -> list[dict]:
    if not data:
        return [{"goal": "adapter, 700 steps", "target": f"<= {GOALS['adapter_ms']:g} ms", "measured": "not measured",
                 "met": None}]
    rows = {r["solver"]: r for r in data["rows"]}
    fast = next(r for name, r in rows.items() if name.startswith("fast (default"))
    per_step_us = 1e3 * fast["wall_median_ms"] / 700
    return [{"goal": "adapter, 700 steps (training + prediction, N = 800)", "target": f"<= {GOALS['adapter_ms']:g} ms",
             "measured": f"{fast['wall_median_ms']:.1f} ms", "met": fast["wall_median_ms"] <= GOALS["adapter_ms"],
             "held_back_by": f"{per_step_us:.1f} us per step ({data['default_execution']})"},
            {"goal": "adapter agrees with the plain loop", "target": "100% argmax, max |dp| <= 1e-4",
             "measured": f"{100 * fast['same_argmax_vs_plain']:.2f}% / {fast['max_dp_vs_plain']:.1e}",
             "met": fast["same_argmax_vs_plain"] == 1.0 and fast["max_dp_vs_plain"] <= 1e-4}]


def build_report(args, records: list[dict], data: dict[str, dict], started: float) -> tuple[str, dict]:
    env = {}
    for record in records:
        if record["name"] == "env" and record["status"] == "ok":
            env = json.loads(record["output"].strip().splitlines()[-1])
    goals = [pipeline_goal((data.get("patch-bf16") or {}).get("rows"), GOALS["patch_fps"],
                           "patch mode, 640x480, bf16, end to end"),
             *adapter_goal(data.get("adapter")),
             pipeline_goal((data.get("region-bf16") or {}).get("rows"), GOALS["region_fps"],
                           "region mode, 640x480, bf16, SAM 2.1 hiera-L 32x32 points")]
    peaks = [r["peak_cuda_mb"] for d in data.values() for r in d.get("rows", []) if r.get("peak_cuda_mb")]
    dry = args.device != "cuda"
    lines = [f"# GPU check ({'CPU dry run, ' if dry else ''}{time.strftime('%Y-%m-%d %H:%M')})", ""]
    if dry:
        lines += ["**Dry run on the CPU with tiny test models: no figure here is a GPU figure.**", ""]
    lines += [f"Machine: {env.get('machine', '?')}; device: {env.get('device_name', args.device)}; "
              f"Python {env.get('python', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '-')}; "
              f"load average {env.get('loadavg', '?')}", "",
              "Packages: " + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()), "",
              f"Wheels installed for this run: {os.environ.get('RNS_GPU_WHEELS_INSTALLED', 'none')}; "
              f"retrieval backend on {args.device}: {env.get('retrieval_backend', '?')}; "
              f"rns_ros imports without ROS: {env.get('imports_without_ros', '?')}", "",
              "## Goals (640x480, random-weight ViT-B/16)", "",
              "| goal | target | measured | met | held back by |", "|---|---|---|---|---|"]
    for goal in goals:
        met = "-" if goal["met"] is None else ("yes" if goal["met"] else "**no**")
        lines.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {met} | {goal.get('held_back_by', '')} |")
    lines += ["", f"Peak GPU memory over all pipeline settings: {max(peaks):.0f} MiB" if peaks else
              "Peak GPU memory: not measured (no CUDA pipeline row)", "", "## Stages", "",
              "| stage | status | seconds | result |", "|---|---|---|---|"]
    for record in records:
        result = ""
        if record["name"].endswith("tests"):
            summary = pytest_summary(record["output"])
            record["pytest"] = summary
            result = ", ".join(f"{n} {w}" for w, n in summary["counts"].items())
            if summary["failed"]:
                result += "; failed: " + ", ".join(summary["failed"][:8])
        lines.append(f"| {record['name']} | {record['status']} | {record['seconds']} | {result} |")
    for name, payload in data.items():
        lines += ["", f"## {name}", "", payload.get("table") or _adapter_table(payload)]
    skips = sorted({s for r in records for s in r.get("pytest", {}).get("skip_reasons", [])})
    if skips:
        lines += ["", "Skip reasons: " + "; ".join(skips)]
    lines += ["", f"Total {time.monotonic() - started:.0f} s of a {args.budget:.0f} s budget. Random weights: "
              "compute cost only; with random SAM 2 weights few masks survive the thresholds, so region "
              "mode's pooling and adapter costs are not representative."]
    report = "\n".join(lines) + "\n"
    payload = {"device": args.device, "quick": args.quick, "env": env, "goals": goals,
               "peak_cuda_mb": max(peaks) if peaks else None,
               "stages": [{k: v for k, v in r.items() if k != "output"} for r in records], "results": data}
    return report, payload


def write_report(args, records: list[dict], data: dict[str, dict], started: float, out: Path) -> str:
    """Write report.md and report.json to `out` (again after every stage); returns the markdown."""
    report, payload = build_report(args, records, data, started)
    (out / "report.md").write_text(report)
    (out / "report.json").write_text(json.dumps(payload, indent=1) + "\n")
    return report


def _adapter_table(payload: dict) -> str:
    head = f"{payload.get('machine', '')}; {payload.get('problem', '')}; default: {payload.get('default_execution', '')}"
    rows = ["| solver | wall median ms | wall p95 ms | vs plain: same argmax / max abs dp |", "|---|---|---|---|"]
    for r in payload.get("rows", []):
        agreement = (f"{100 * r['same_argmax_vs_plain']:.2f}% / {r['max_dp_vs_plain']:.1e}"
                     if "same_argmax_vs_plain" in r else "")
        rows.append(f"| {r['solver']} | {r['wall_median_ms']:.2f} | {r['wall_p95_ms']:.2f} | {agreement} |")
    return head + "\n\n" + "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (the dry run)")
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes (the CPU dry run)")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds for all stages together")
    parser.add_argument("--only", default="", help="comma list of stage names to run (default: all)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "output" / "gpu-check"))
    args = parser.parse_args()
    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="rns-gpu-check-"))
    wanted = {name for name in args.only.split(",") if name}
    records: list[dict] = []
    data: dict[str, dict] = {}
    with open(out / "check.log", "w") as log:
        for stage in stages(args.device, args.quick, scratch):
            if wanted and stage["name"] not in wanted:
                continue
            left = args.budget - (time.monotonic() - started)
            if left < 10:
                records.append({"name": stage["name"], "status": "skipped (budget spent)", "seconds": 0, "output": ""})
                continue
            record = run_stage(stage, min(stage["cap"], left), log)
            records.append(record)
            if stage.get("json") and (scratch / stage["json"]).is_file():
                data[stage["name"]] = json.loads((scratch / stage["json"]).read_text())
            write_report(args, records, data, started, out)
            print(f"[check] {record['name']}: {record['status']} in {record['seconds']} s", flush=True)
    print(write_report(args, records, data, started, out))
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
