"""scripts/bench_cameras.py stays runnable: two cameras, both layouts, real node processes
(test-tiny, a one-second window); no timing is checked."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_cameras.py"


@pytest.mark.slow
def test_the_cameras_benchmark_runs_both_layouts(capsys):
    spec = importlib.util.spec_from_file_location("bench_cameras", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--cameras", "2", "--seconds", "1", "--steps", "5", "--size", "96x64",
                       "--startup-timeout", "120"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "layout" not in line]
    assert [tuple(c.strip() for c in r.strip("|").split("|")[:3]) for r in rows] == [
        ("2", "one node", "1"), ("2", "node/camera", "2")]
    assert all(float(r.split("|")[4]) > 0 for r in rows)  # every configuration segmented frames
    assert "load average" in out
