"""scripts/bench_fleet.py stays runnable (tiny sizes, two teaches): every table and row, no timing
checked; the byte counts are checked against the features they carry."""
import re

import pytest


@pytest.mark.slow
def test_the_fleet_benchmark_runs_and_prints_every_row(capsys, load_script):
    bench = load_script("bench_fleet.py")
    assert bench.main(["--dims", "32", "--snapshot", "20", "--snapshot-dim", "32", "--repeats", "1",
                       "--teaches", "2"]) == 0
    out = capsys.readouterr().out
    sizes = {m.group(1): int(m.group(2).replace(",", ""))
             for m in re.finditer(r"^\| (.+?) \| 32 \| ([\d,]+) \|$", out, re.M)}
    assert 4 * 32 < sizes["one exemplar, features only"] < 4 * 32 + 1000  # the floats plus names and hash
    assert sizes["one exemplar + 640x480 image and labels (share_masks)"] > 640 * 480 * 4  # rgb8 + mono8
    assert sizes["snapshot of 20 exemplars, 20 classes: whole"] > 20 * 4 * 32
    for row in ("receiver: FleetSync.receive (check + merge), under the engine lock",
                "receiver: copy the memory for saving, under the engine lock",
                "receiver: write the copy atomically (frames go on)",
                "DDS delivery to a late subscription (transient local)", "A answers", "B's class map holds it"):
        assert re.search(rf"^\| {re.escape(row)} \| [\d.]+ \| [\d.]+ \|$", out, re.M), row
    assert re.search(r"^\| \*\*of which frames wait \(under the engine lock\)\*\* \| \*\*[\d.]+\*\* \| \|$", out, re.M)
    assert "load average" in out
