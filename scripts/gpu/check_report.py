"""The GPU check's report: goals (docs/gpu.md) read from the stages' data, the machine's versions
beside our pins, one row per stage (run or not, and why), every benchmark table.

`build(...)` returns (markdown, payload for report.json); check.py writes them after every stage.
"""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ElementTree

GOALS = {"patch_fps": 30.0, "adapter_ms": 10.0, "region_fps": 3.0}  # 640x480, issues 14 and 27
# torch, torchvision and numpy are never carried: torch's CUDA wheels are about a gigabyte, far over
# the 64 MiB the device tool carries, and torchvision and numpy must match the torch they run with
MACHINE_ONLY = ("torch", "torchvision", "numpy")


def junit_summary(path) -> dict | None:
    """Counts, failed test ids and skip reasons from a pytest junit XML file (None: unreadable)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed, skips = [], set()
    for case in root.iter("testcase"):
        test_id = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            failed.append(test_id)
        elif case.find("error") is not None:
            counts["errors"] += 1
            failed.append(test_id)
        elif (skipped := case.find("skipped")) is not None:
            counts["skipped"] += 1
            skips.add(re.sub(r"^\S+:\d+: ", "", skipped.get("message", "")))
        else:
            counts["passed"] += 1
    return {"counts": {k: v for k, v in counts.items() if v}, "failed": failed, "skip_reasons": sorted(skips)}


def pytest_summary(output: str) -> dict:
    """The same from pytest's console output (a stage cut short writes no XML): counts of the last
    summary line, failed test ids, skip reasons."""
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


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def pipeline_goal(rows: list[dict] | None, target: float, what: str) -> dict:
    row = next((r for r in rows or [] if r["size"] == "640x480"), None)
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
    fast = next(r for r in data["rows"] if r["solver"].startswith("fast (default"))
    per_step_us = 1e3 * fast["wall_median_ms"] / 700
    return [{"goal": "adapter, 700 steps (training + prediction, N = 800)", "target": f"<= {GOALS['adapter_ms']:g} ms",
             "measured": f"{fast['wall_median_ms']:.1f} ms", "met": fast["wall_median_ms"] <= GOALS["adapter_ms"],
             "held_back_by": f"{per_step_us:.1f} us per step ({data['default_execution']})"},
            {"goal": "adapter agrees with the plain loop", "target": "100% argmax, max \\|dp\\| <= 1e-4",
             "measured": f"{100 * fast['same_argmax_vs_plain']:.2f}% / {fast['max_dp_vs_plain']:.1e}",
             "met": fast["same_argmax_vs_plain"] == 1.0 and fast["max_dp_vs_plain"] <= 1e-4}]


def goals(data: dict[str, dict]) -> list[dict]:
    return [pipeline_goal((data.get("patch-cuda") or {}).get("rows"), GOALS["patch_fps"],
                          "patch mode, 640x480, cuda profile (bf16), end to end"),
            *adapter_goal(data.get("adapter")),
            pipeline_goal((data.get("region-cuda") or {}).get("rows"), GOALS["region_fps"],
                          "region mode, 640x480, cuda profile (bf16), SAM 2.1 hiera-L 32x32 points")]


def versions_table(env: dict, wheels: str) -> list[str]:
    rows = env.get("versions") or {}
    if not rows:
        return ["Versions: not read (the env stage did not finish)."]
    lines = ["| package | pinned | here | from |", "|---|---|---|---|"]
    for name, row in rows.items():
        differs = row["pinned"] not in ("-", row["here"])
        lines.append(f"| {name} | {row['pinned']} | {'**' + row['here'] + '**' if differs else row['here']} | "
                     f"{row['source']} |")
    machine = ", ".join(f"{n} {rows[n]['here']}" for n in MACHINE_ONLY if n in rows)
    lines += ["", f"Deliberately run on this machine's {machine} (torch's CUDA wheels are about a gigabyte, "
                  "far over the 64 MiB the device tool carries; torchvision and numpy go with the torch they "
                  f"run with); the packages it lacked or held at another version came from .gpu-wheels: "
                  f"{wheels or 'none'}. Bold: differs from our pin."]
    return lines


def stage_result(record: dict) -> str:
    summary = record.get("pytest")
    if not summary:
        return record.get("error", "")
    text = ", ".join(f"{n} {w}" for w, n in summary["counts"].items())
    if summary["failed"]:
        text += "; failed: " + ", ".join(summary["failed"][:8])
    return text


def build(*, device: str, quick: bool, budget: float, elapsed: float, records: list[dict], data: dict[str, dict],
          env: dict, wheels: str) -> tuple[str, dict]:
    """(report.md text, report.json payload)."""
    found = goals(data)
    peaks = [r["peak_cuda_mb"] for d in data.values() for r in d.get("rows", []) if r.get("peak_cuda_mb")]
    dry = device != "cuda"
    lines = [f"# GPU check ({'CPU dry run, ' if dry else ''}{time.strftime('%Y-%m-%d %H:%M')})", ""]
    if dry:
        lines += ["**Dry run on the CPU with tiny test models: no figure here is a GPU figure.**", ""]
    lines += [f"Machine: {env.get('machine', '?')}; device: {env.get('device_name', device)}; "
              f"Python {env.get('python', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '-')}; "
              f"load average {env.get('loadavg', '?')}", "",
              f"Retrieval backend on {device}: {env.get('retrieval_backend', '?')}; profile: "
              f"{env.get('auto_profile', '?')}; rns_ros imports without ROS: {env.get('imports_without_ros', '?')}", "",
              *versions_table(env, wheels), "",
              "## Goals (640x480, random-weight ViT-B/16)", "",
              "| goal | target | measured | met | held back by |", "|---|---|---|---|---|"]
    for goal in found:
        met = "-" if goal["met"] is None else ("yes" if goal["met"] else "**no**")
        lines.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {met} | {goal.get('held_back_by', '')} |")
    lines += ["", f"Peak GPU memory over all pipeline settings: {max(peaks):.0f} MiB" if peaks else
              "Peak GPU memory: not measured (no CUDA pipeline row)", "", "## Stages (in the order they ran)", "",
              "| stage | status | seconds (cap) | what it proves | result |", "|---|---|---|---|---|"]
    for record in records:
        lines.append(f"| {record['name']} | {record['status']} | {record['seconds']} ({record['cap']:.0f}) | "
                     f"{record['proves']} | {stage_result(record)} |")
    for name, payload in data.items():
        lines += ["", f"## {name}", "", payload.get("table") or adapter_table(payload)]
    skips = sorted({s for r in records for s in (r.get("pytest") or {}).get("skip_reasons", [])})
    if skips:
        lines += ["", "Skip reasons: " + "; ".join(skips)]
    lines += ["", f"Total {elapsed:.0f} s of a {budget:.0f} s budget. Random weights: compute cost only; with "
              "random SAM 2 weights few masks survive the thresholds, so region mode's pooling and adapter costs "
              "are not representative. Each stage's console output is in check.log."]
    payload = {"device": device, "quick": quick, "env": env, "goals": found,
               "peak_cuda_mb": max(peaks) if peaks else None, "stages": records, "results": data}
    return "\n".join(lines) + "\n", payload


def adapter_table(payload: dict) -> str:
    head = f"{payload.get('machine', '')}; {payload.get('problem', '')}; default: {payload.get('default_execution', '')}"
    rows = ["| solver | wall median ms | wall p95 ms | vs plain: same argmax / max abs dp |", "|---|---|---|---|"]
    for r in payload.get("rows", []):
        agreement = (f"{100 * r['same_argmax_vs_plain']:.2f}% / {r['max_dp_vs_plain']:.1e}"
                     if "same_argmax_vs_plain" in r else "")
        rows.append(f"| {r['solver']} | {r['wall_median_ms']:.2f} | {r['wall_p95_ms']:.2f} | {agreement} |")
    return head + "\n\n" + "\n".join(rows)
