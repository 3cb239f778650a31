"""scripts/bench_ros_overhead.py stays runnable (a tiny size, one frame): every row, no timing checked."""


def test_the_overhead_benchmark_runs_and_prints_every_row(capsys, load_script):
    bench = load_script("bench_ros_overhead.py")
    assert bench.main(["--frames", "1", "--sizes", "96x64"]) == 0
    out = capsys.readouterr().out
    for row in ("overlay + legend (8 classes) + encode", "labels_color + encode (rgb8)",
                "node: decode + publish labels, confidence, overlay (legend), labels_color",
                "camera publish -> labels received", "encode confidence (mono8)"):
        assert f"| 96x64 | {row} |" in out
    assert "| 96x64 | decode JPEG q90 (" in out and "| 96x64 | decode PNG (" in out
    assert "load average" in out
    labels = bench.patch_labels(40, 56)
    assert labels.shape == (40, 56) and (labels[:16, :16] == labels[0, 0]).all()  # one id per 16x16 patch
