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


def test_bench_json_holds_every_finished_row_as_it_goes(tmp_path, monkeypatch):
    """A run cut short (the GPU check's time cap) keeps the rows it finished: the JSON is written
    after every row. Checked by stopping the run after its second row."""
    import json

    import pytest

    out = tmp_path / "bench.json"
    real = bench._run_backbone
    seen = []

    def two_rows_then_killed(args, name):
        for row in real(args, name):
            seen.append(row)
            yield row
            if len(seen) == 2:
                raise KeyboardInterrupt  # as if the cap had struck
    monkeypatch.setattr(bench, "_run_backbone", two_rows_then_killed)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--backbone", "test-tiny", "--sizes", "64x48,96x64,32x32", "--repeats", "1", "--steps", "3",
                    "--classes", "2", "--exemplars", "1", "--json", str(out)])
    payload = json.loads(out.read_text())
    assert [r["size"] for r in payload["rows"]] == ["64x48", "96x64"] and "| patch | 96x64 |" in payload["table"]


def test_bench_says_which_profile_auto_chose(capsys):
    assert bench.main(["--backbone", "test-tiny", "--sizes", "32x32", "--repeats", "1", "--steps", "3",
                       "--classes", "2", "--exemplars", "1"]) == 0
    assert "profile auto -> default on cpu" in capsys.readouterr().out
