"""scripts/bench_console.py stays runnable (one short round): every column, no timing checked."""


def test_the_console_benchmark_runs_and_prints_its_row(capsys, load_script):
    bench = load_script("bench_console.py")
    assert bench.main(["--rates", "5", "--seconds", "1", "--rounds", "1", "--loads", "1", "--size", "160x120"]) == 0
    out = capsys.readouterr().out
    assert "| camera | node in / out (frames/s) | page load" in out and "load average" in out
    row = next(line for line in out.splitlines() if line.startswith("| 5 Hz |"))
    assert len(row.split("|")) == 12 and "nan" not in row.split("|")[3]  # the page loads were measured
