"""Seed averages, the markdown tables and the plots, from hand-made records."""
from __future__ import annotations

import pytest

from rns_ros.eval.report import average_over_datasets, markdown_table, plot_results, summarize


def _rec(dataset, setting, method, shots, seed, miou, groups=None):
    rec = {"dataset": dataset, "setting": setting, "method": method, "shots": shots, "seed": seed,
           "status": "ok", "miou": miou}
    if groups:
        rec["groups"] = {g: {"classes": [], "miou": v} for g, v in groups.items()}
    return rec


RECORDS = [
    _rec("voc", "full", "rns", 1, 100, 60.0), _rec("voc", "full", "rns", 1, 18, 64.0),
    _rec("voc", "full", "zero-shot", 1, 100, 50.0), _rec("voc", "full", "zero-shot", 1, 18, 50.0),
    _rec("ade20k", "full", "rns", 1, 100, 30.0),
    _rec("voc", "partial-visual:0.5", "rns", 1, 100, 55.0, {"seen": 70.0, "unseen": 40.0}),
    {"dataset": "voc", "setting": "no-text", "method": "zero-shot", "shots": 1, "seed": 100,
     "status": "skipped", "reason": "zero-shot needs class names"},
]


def test_summary_averages_seeds_and_datasets():
    summary = summarize(RECORDS)
    rns = next(r for r in summary if r["dataset"] == "voc" and r["setting"] == "full" and r["method"] == "rns")
    assert rns["miou_mean"] == pytest.approx(62.0) and rns["miou_std"] == pytest.approx(2.0)
    assert rns["seeds"] == [18, 100]
    avg = average_over_datasets(summary)
    # Only entries present for both datasets are averaged: rns/full/B=1 -> (62 + 30) / 2.
    assert avg == [{"setting": "full", "method": "rns", "shots": 1, "miou_mean": 46.0,
                    "datasets": ["ade20k", "voc"]}]


def test_markdown_and_plots(tmp_path):
    summary = summarize(RECORDS)
    results = {"summary": summary, "records": RECORDS, "backbone_identity": "fake",
               "config": {"mode": "patch"}, "average_over_datasets": average_over_datasets(summary)}
    md = markdown_table(results)
    assert "## voc — full" in md and "| rns | 62.00 ± 2.00 |" in md and "| zero-shot | 50.00 ± 0.00 |" in md
    assert "seen / unseen mIoU" in md and "| rns | 70.00 / 40.00 |" in md
    assert "## Average over datasets" in md and "| full | rns | 1 | 46.00 |" in md
    assert "voc no-text zero-shot: zero-shot needs class names" in md
    written = plot_results(results, tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["miou_vs_shots_ade20k.png", "miou_vs_shots_voc.png", "partial_support_voc.png"]
    assert all(p.stat().st_size > 1000 for p in written)
