"""rns-bench runs end to end with the tiny model and prints one row per (mode, size)."""
from rns_ros.cli import bench


def test_bench_prints_a_row_per_mode_and_size(capsys):
    code = bench.main(["--backbone", "test-tiny", "--sizes", "64x48,96x64", "--repeats", "1",
                       "--steps", "5", "--classes", "3", "--exemplars", "1", "--modes", "patch"])
    assert code == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| patch |")]
    assert [r.split("|")[2].strip() for r in rows] == ["64x48", "96x64"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 2 + len(bench.STAGES) + 3
        assert float(cells[-2]) > 0  # frames per second


def test_bench_refuses_bad_sizes(capsys):
    try:
        bench.main(["--backbone", "test-tiny", "--sizes", "big"])
    except SystemExit as exc:  # argparse refuses with usage, exit code 2
        assert exc.code == 2
    else:
        raise AssertionError("a size that is not WIDTHxHEIGHT must be refused")


def test_bench_runs_several_backbones_in_one_invocation(capsys):
    code = bench.main(["--backbone", "test-tiny,test-tiny-dinotxt,test-tiny-siglip2", "--sizes", "64x48",
                       "--repeats", "1", "--steps", "3", "--classes", "2", "--exemplars", "1"])
    assert code == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "| patch | 64x48 |" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["test-tiny", "test-tiny-dinotxt", "test-tiny-siglip2"]
    assert "load average" in out


def test_bench_runs_several_profiles_interleaved_and_writes_json(capsys, tmp_path):
    import json

    out = tmp_path / "bench.json"
    code = bench.main(["--backbone", "test-tiny", "--sizes", "64x48", "--repeats", "2", "--classes", "3",
                       "--exemplars", "1", "--profile", "default,cpu-fast", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| patch | 64x48 |" in text and "| patch, cpu-fast (" in text and "140 steps) | 64x48 |" in text
    rows = json.loads(out.read_text())["rows"]
    assert [(r["profile"], r["steps"]) for r in rows] == [("default", 700), ("cpu-fast", 140)]
    assert all(len(r["totals"]) == 2 for r in rows)
