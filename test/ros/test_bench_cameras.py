"""scripts/bench_cameras.py (two cameras, both layouts, real node processes, test-tiny, a one-second
window) and scripts/bench_batching.py stay runnable; no timing is checked."""
import pytest


@pytest.mark.slow
def test_the_cameras_benchmark_runs_both_layouts(capsys, load_script):
    bench = load_script("bench_cameras.py")
    assert bench.main(["--cameras", "2", "--seconds", "1", "--steps", "5", "--size", "96x64",
                       "--startup-timeout", "120"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "layout" not in line]
    assert [tuple(c.strip() for c in r.strip("|").split("|")[:3]) for r in rows] == [
        ("2", "one node", "1"), ("2", "node/camera", "2")]
    assert all(float(r.split("|")[4]) > 0 for r in rows)  # every configuration segmented frames
    assert "load average" in out


def test_the_batching_benchmark_prints_a_row_per_camera_count(capsys, load_script):
    bench = load_script("bench_batching.py")
    assert bench.main(["--backbone", "test-tiny", "--cameras", "1,3", "--size", "96x64", "--repeats", "1",
                       "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|")[1:5] for line in out.splitlines() if line.startswith("| ") and "cameras" not in line]
    assert [int(r[0]) for r in rows] == [1, 3] and all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)
    assert "load average" in out
