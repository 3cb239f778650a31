#!/usr/bin/env python3
"""The GPU check (issues 14 and 27, docs/gpu.md): the stages of check_stages.py, one process each, most
valuable first, within a time budget. scripts/gpu/check.sh installs the carried wheels, then runs
this. Output (to --out, default $OUT, else output/gpu-check):

    report.md     the report (also printed on stdout at the end): goals, versions, stages, tables
    report.json   the same with every sample
    stages/*.json one record per stage, written the moment it ends
    check.log     every stage's console output, as it happens

Robust by construction, because a lent GPU gives one run: a stage's stdout goes to a file of its
own and its stderr to check.log, and its results are read from the file it writes (JSON, junit
XML), never from the console, so warnings and noise cannot break the report; every stage runs in a
process group of its own with a time cap, and a crash, a hang (its children included) or a
timeout costs that stage only; the stage's record is written as it ends and the report rewritten
after every stage, and an error while writing the report is logged and costs nothing else; a stage
that the remaining budget cannot hold is reported as not run, with the reason. Progress goes to
stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_report as report  # noqa: E402
import check_stages as stage_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_KILL_GRACE_S = 5.0


def run_stage(stage: stage_table.Stage, timeout: float, scratch: Path, log) -> dict:
    """Run one stage in its own process group: stdout to scratch/<name>.out, stderr to `log`.
    Its record: status (ok, failed (exit N), timeout after T s, could not start), seconds, data."""
    log.write(f"\n===== {stage.name}: {' '.join(stage.argv)} (timeout {timeout:.0f} s)\n")
    log.flush()
    start = time.monotonic()
    stdout_path = scratch / f"{stage.name}.out"
    try:
        with open(stdout_path, "w") as stdout:
            process = subprocess.Popen(stage.argv, cwd=ROOT, stdout=stdout, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            try:
                code = process.wait(timeout=timeout)
                status = "ok" if code == 0 else f"failed (exit {code})"
                _signal_group(process.pid, signal.SIGKILL)  # children it left behind (workers, say)
            except subprocess.TimeoutExpired:
                _stop_group(process)
                status = f"timeout after {timeout:.0f} s"
    except OSError as error:
        status = f"could not start: {error}"
    record = {"name": stage.name, "status": status, "seconds": round(time.monotonic() - start, 1),
              "cap": stage.cap, "proves": stage.proves}
    record.update(read_data(stage, scratch, stdout_path))
    return record


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the stage's process group, then, after a grace period, SIGKILL to whatever is
    left of it (its children too, which may outlive the stage's own process)."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass


def read_data(stage: stage_table.Stage, scratch: Path, stdout_path: Path) -> dict:
    """What the stage left in its data file: {"data": ...} for env and benchmarks, {"pytest": ...}
    for tests (from the console when the XML is missing), {"error": why} when unreadable."""
    path = scratch / stage.data if stage.data else None
    if stage.kind == "tests":
        summary = report.junit_summary(path) if path else None
        if summary is None:
            summary = report.pytest_summary(_read(stdout_path))
        return {"pytest": summary}
    if path is None or not path.is_file():
        return {"error": "no data file written"} if path else {}
    try:
        return {"data": json.loads(path.read_text())}
    except (OSError, ValueError) as error:
        return {"error": f"unreadable {path.name}: {error}"}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def not_run(stage: stage_table.Stage, why: str) -> dict:
    return {"name": stage.name, "status": f"not run: {why}", "seconds": 0, "cap": stage.cap, "proves": stage.proves}


def run_stages(stages: list[stage_table.Stage], *, budget: float, out: Path, scratch: Path, device: str = "cuda",
               quick: bool = False, wanted: set[str] = frozenset()) -> list[dict]:
    """Run `stages` in order within `budget` seconds, writing stages/<name>.json as each ends and
    the report after each; returns the records (one per stage, run or not)."""
    started = time.monotonic()
    (out / "stages").mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    with open(out / "check.log", "a") as log:
        for stage in stages:
            left = budget - (time.monotonic() - started)
            if wanted and stage.name not in wanted:
                record = not_run(stage, "not in --only")
            elif left < stage.least:
                record = not_run(stage, f"{left:.0f} s of the {budget:.0f} s budget left, it needs {stage.least:.0f} s")
            else:
                record = run_stage(stage, min(stage.cap, left), scratch, log)
            records.append(record)
            _write(out / "stages" / f"{stage.name}.json", json.dumps(record, indent=1) + "\n", log)
            write_report(records, out=out, budget=budget, elapsed=time.monotonic() - started, device=device,
                         quick=quick, log=log)
            print(f"[check] {record['name']}: {record['status']} in {record['seconds']} s", file=sys.stderr,
                  flush=True)
    return records


def write_report(records: list[dict], *, out: Path, budget: float, elapsed: float, device: str, quick: bool,
                 log) -> str | None:
    """report.md and report.json from the records so far; an error is logged, never raised."""
    try:
        env = next((r.get("data") or {} for r in records if r["name"] == "env"), {})
        data = {r["name"]: r["data"] for r in records if r.get("data") and r["name"] != "env"}
        markdown, payload = report.build(device=device, quick=quick, budget=budget, elapsed=elapsed,
                                         records=records, data=data, env=env,
                                         wheels=os.environ.get("RNS_GPU_WHEELS_INSTALLED", "none"))
        _write(out / "report.json", json.dumps(payload, indent=1) + "\n", log)
        _write(out / "report.md", markdown, log)
        return markdown
    except Exception:  # noqa: BLE001 - a report error must not cost the run
        log.write(f"\n===== report writing failed (the stage records in stages/ are complete):\n"
                  f"{traceback.format_exc()}\n")
        log.flush()
        return None


def _write(path: Path, text: str, log) -> None:
    """Write atomically (a temporary name, then renamed); an OSError is logged."""
    try:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        temporary.replace(path)
    except OSError as error:
        log.write(f"\n===== could not write {path}: {error}\n")
        log.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (the dry run)")
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes (the CPU dry run)")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds for all stages together")
    parser.add_argument("--only", default="", help="comma list of stage names to run (default: all)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "output" / "gpu-check"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "check.log").write_text("")
    scratch = Path(tempfile.mkdtemp(prefix="rns-gpu-check-"))
    stages = stage_table.table(args.device, args.quick, scratch)
    unknown = {name for name in args.only.split(",") if name} - {s.name for s in stages}
    if unknown:
        print(f"check.py: unknown stage(s) {sorted(unknown)}; stages: {[s.name for s in stages]}", file=sys.stderr)
        return 2
    records = run_stages(stages, budget=args.budget, out=out, scratch=scratch, device=args.device, quick=args.quick,
                         wanted={name for name in args.only.split(",") if name})
    markdown = (out / "report.md").read_text() if (out / "report.md").is_file() else None
    print(markdown or "report.md could not be written: see check.log; the stage records are in stages/")
    ran = [r for r in records if not r["status"].startswith("not run: not in --only")]
    return 0 if all(r["status"] == "ok" for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
