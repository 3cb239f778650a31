"""Turns run records into results.json, a markdown table and plots (mIoU vs B like the paper's
Fig. 3; mIoU vs the fraction of classes without visual support / names like Fig. 4)."""
from __future__ import annotations

import dataclasses
import datetime
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from rns_ros.eval.cache import atomic_write_bytes
from rns_ros.eval.settings import SupportSetting

RANDOM_WEIGHTS_NOTE = ("RANDOM WEIGHTS (test-only backbone): these numbers exercise the pipeline and "
                       "mean nothing about segmentation quality.")


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def summarize(records: Iterable[dict]) -> list[dict]:
    """Seed-averaged mIoU per (dataset, setting, method, B): mean, population std, seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        if rec.get("status") == "ok" and rec.get("miou") is not None:
            groups[(rec["dataset"], rec["setting"], rec["method"], rec["shots"])].append(rec)
    rows = []
    for (dataset, setting, method, shots), recs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        values = np.array([r["miou"] for r in recs], dtype=np.float64)
        row = {"dataset": dataset, "setting": setting, "method": method, "shots": shots,
               "miou_mean": round(float(values.mean()), 4), "miou_std": round(float(values.std()), 4),
               "seeds": sorted(r["seed"] for r in recs)}
        group_names = sorted({g for r in recs for g in r.get("groups", {})})
        if group_names:
            row["groups"] = {}
            for g in group_names:
                vals = [r["groups"][g]["miou"] for r in recs if r["groups"][g]["miou"] is not None]
                row["groups"][g] = round(float(np.mean(vals)), 4) if vals else None
        if any("panoptic" in r for r in recs):
            pqs = [r["panoptic"]["pq"] for r in recs if r.get("panoptic", {}).get("pq") is not None]
            row["pq_mean"] = round(float(np.mean(pqs)), 4) if pqs else None
        rows.append(row)
    return rows


def average_over_datasets(summary: list[dict]) -> list[dict]:
    """Mean of the seed-averaged mIoU over datasets, where every dataset has the entry (Table 1)."""
    datasets = sorted({r["dataset"] for r in summary})
    if len(datasets) < 2:
        return []
    by_key: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in summary:
        by_key[(r["setting"], r["method"], r["shots"])][r["dataset"]] = r["miou_mean"]
    return [{"setting": s, "method": m, "shots": b, "miou_mean": round(float(np.mean(list(v.values()))), 4),
             "datasets": sorted(v)}
            for (s, m, b), v in sorted(by_key.items(), key=lambda kv: tuple(map(str, kv[0])))
            if len(v) == len(datasets)]


def build_results(config, backbone_identity: str, records: list[dict], random_weights: bool = False) -> dict:
    summary = summarize(records)
    results = {
        "format": "rns-eval/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backbone_identity": backbone_identity,
        "config": _jsonable(config),
        "metric_units": "percent (mIoU, per-class IoU, pixel accuracy, PQ/SQ/RQ)",
        "records": records,
        "summary": summary,
        "average_over_datasets": average_over_datasets(summary),
    }
    if random_weights:
        results["warning"] = RANDOM_WEIGHTS_NOTE
    return results


def _fmt(row: dict | None) -> str:
    if row is None:
        return "n/a"
    if len(row["seeds"]) > 1:
        return f"{row['miou_mean']:.2f} ± {row['miou_std']:.2f}"
    return f"{row['miou_mean']:.2f}"


def markdown_table(results: dict) -> str:
    """One table per dataset and setting: methods x B (seed mean ± std); seen/unseen for partial
    settings; the average over datasets when there are several."""
    summary = results["summary"]
    lines = ["# rns-eval results", ""]
    if results.get("warning"):
        lines += [f"**{results['warning']}**", ""]
    lines += [f"Backbone: `{results['backbone_identity']}`; mode: {results['config'].get('mode')}; "
              "mIoU in %, mean ± std over seeds.", ""]
    index = {(r["dataset"], r["setting"], r["method"], r["shots"]): r for r in summary}
    for dataset in sorted({r["dataset"] for r in summary}):
        for setting in sorted({r["setting"] for r in summary if r["dataset"] == dataset}):
            rows = [r for r in summary if r["dataset"] == dataset and r["setting"] == setting]
            shots = sorted({r["shots"] for r in rows})
            methods = list(dict.fromkeys(r["method"] for r in sorted(rows, key=lambda r: r["method"])))
            lines += [f"## {dataset} — {setting}", "",
                      "| method | " + " | ".join(f"B={b}" for b in shots) + " |",
                      "|---|" + "---|" * len(shots)]
            for m in methods:
                lines.append(f"| {m} | " + " | ".join(_fmt(index.get((dataset, setting, m, b))) for b in shots) + " |")
            lines.append("")
            grouped = [r for r in rows if r.get("groups")]
            if grouped:
                names = sorted({g for r in grouped for g in r["groups"]})
                lines += [f"{' / '.join(names)} mIoU:", "",
                          "| method | " + " | ".join(f"B={b}" for b in shots) + " |",
                          "|---|" + "---|" * len(shots)]
                for m in methods:
                    cells = []
                    for b in shots:
                        r = index.get((dataset, setting, m, b))
                        cells.append(" / ".join("n/a" if r is None or r.get("groups", {}).get(g) is None
                                                else f"{r['groups'][g]:.2f}" for g in names))
                    lines.append(f"| {m} | " + " | ".join(cells) + " |")
                lines.append("")
    avg = results.get("average_over_datasets") or []
    if avg:
        lines += ["## Average over datasets", "", "| setting | method | B | mIoU |", "|---|---|---|---|"]
        lines += [f"| {r['setting']} | {r['method']} | {r['shots']} | {r['miou_mean']:.2f} |" for r in avg]
        lines.append("")
    skipped = [r for r in results["records"] if r.get("status") in ("skipped", "error")]
    if skipped:
        lines += ["Not run:", ""]
        seen = set()
        for r in skipped:
            key = (r["dataset"], r["setting"], r["method"], r["reason"])
            if key not in seen:
                seen.add(key)
                lines.append(f"- {r['dataset']} {r['setting']} {r['method']}: {r['reason']}")
        lines.append("")
    return "\n".join(lines)


def _finish_axes(ax, xlabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _save_figure(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_results(results: dict, out: Path) -> list[Path]:
    """mIoU vs B per method (Fig. 3 style) and partial-support curves (Fig. 4 style), one PNG per
    dataset each. Returns the files written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    summary = results["summary"]
    suffix = " (RANDOM WEIGHTS)" if results.get("warning") else ""
    for dataset in sorted({r["dataset"] for r in summary}):
        rows = [r for r in summary if r["dataset"] == dataset]
        plain = [s for s in ("full", "no-text") if any(r["setting"] == s for r in rows)]
        if plain:
            fig, axes = plt.subplots(1, len(plain), figsize=(5.5 * len(plain), 4), squeeze=False)
            for ax, setting in zip(axes[0], plain):
                sel = [r for r in rows if r["setting"] == setting]
                for method in sorted({r["method"] for r in sel}):
                    pts = sorted((r["shots"], r["miou_mean"], r["miou_std"]) for r in sel if r["method"] == method)
                    xs, ys, es = map(np.array, zip(*pts))
                    if method == "zero-shot" or len(xs) == 1 and xs[0] == 0:
                        ax.axhline(ys[0], linestyle="--", color="gray", label=method)
                    else:
                        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
                ax.set_xticks(sorted({r["shots"] for r in sel if r["shots"] > 0}))
                _finish_axes(ax, "B (support images per class)", f"{dataset}: {setting}{suffix}")
            written.append(_save_figure(plt, fig, out / f"miou_vs_shots_{dataset}.png"))
        kinds = [k for k in ("partial-visual", "partial-text") if any(r["setting"].startswith(k) for r in rows)]
        if kinds:
            fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
            for ax, kind in zip(axes[0], kinds):
                curves: dict[tuple, list] = defaultdict(list)
                for r in rows:
                    if r["setting"] == "full":
                        frac = 0.0
                    elif r["setting"].startswith(kind):
                        frac = SupportSetting.parse(r["setting"]).fraction
                    else:
                        continue
                    curves[(r["method"], r["shots"])].append((frac, r["miou_mean"]))
                methods = sorted({m for m, _ in curves})
                shots_list = sorted({b for _, b in curves})
                for (method, shots), pts in sorted(curves.items(), key=lambda kv: (kv[0][0], kv[0][1])):
                    xs, ys = zip(*sorted(pts))
                    ax.plot(xs, ys, marker="o", color=f"C{methods.index(method) % 10}",
                            linestyle=("-", "--", ":", "-.")[shots_list.index(shots) % 4],
                            label=f"{method} B={shots}")
                what = "visual support" if kind == "partial-visual" else "class names"
                _finish_axes(ax, f"fraction of classes without {what}", f"{dataset}: {kind}{suffix}")
            written.append(_save_figure(plt, fig, out / f"partial_support_{dataset}.png"))
    return written


def write_outputs(results: dict, out: Path, log: Callable[[str], None] = print, plots: bool = True) -> None:
    """<out>/results.json, <out>/results.md and the plots (skipped, with a message, without
    matplotlib: install the 'eval' extra)."""
    out.mkdir(parents=True, exist_ok=True)
    data = json.dumps(results, indent=1, allow_nan=False).encode()
    atomic_write_bytes(out / "results.json", lambda f: f.write(data))
    table = markdown_table(results).encode()
    atomic_write_bytes(out / "results.md", lambda f: f.write(table))
    written: list[Path] = []
    if plots:
        try:
            written = plot_results(results, out)
        except ImportError:
            log("[rns-eval] matplotlib is not installed: no plots (pip install 'rns_ros[eval]')")
    log(f"[rns-eval] wrote {out / 'results.json'}, {out / 'results.md'}"
        + "".join(f", {p}" for p in written))
