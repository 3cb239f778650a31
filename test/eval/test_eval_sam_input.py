"""Region mode: rns-eval and the core Segmenter hand SAM 2 the very same array for a frame (the
backbone's torch bilinear resize), not a PIL-resized copy that low-pass filters on down-scaling."""
import numpy as np
from PIL import Image

from _eval_fakes import write_camvid
from rns_ros.core import AdapterConfig, Segmenter, SupportMemory, TestTimeAdapter, build_backbone
from rns_ros.eval.runner import EvalConfig, run_evaluation


class RecordingProposer:
    """Keeps every image it is asked to partition; one region per 16-px tile."""

    identity = "recording-grid16"

    def __init__(self):
        self.seen = []

    def partition(self, image):
        self.seen.append(np.array(image, copy=True))
        h, w = image.shape[:2]
        return (np.arange(h)[:, None] // 16) * (-(-w // 16)) + np.arange(w)[None, :] // 16


def test_harness_and_segmenter_feed_sam2_identical_arrays(tmp_path):
    rng = np.random.default_rng(0)
    # 100 x 150 frames: the tiny backbone's short side is 64, so SAM 2 gets a down-scaled image,
    # where PIL's antialiased bilinear and torch's plain bilinear differ.
    maps = {s: [rng.integers(0, 11, (100, 150)) for _ in range(n)] for s, n in (("train", 2), ("test", 1))}
    write_camvid(tmp_path / "camvid", maps)
    backbone = build_backbone("test-tiny")
    harness = RecordingProposer()
    config = EvalConfig(datasets=("camvid",), root=str(tmp_path / "camvid"), out=str(tmp_path / "out"),
                        methods=("zero-shot",), shots=(1,), mode="region", progress=False, plots=False)
    run_evaluation(config, backbone=backbone, proposer=harness, log=lambda _: None)

    [test_id] = [p.stem for p in (tmp_path / "camvid" / "test" / "images").iterdir()]
    frame = np.asarray(Image.open(tmp_path / "camvid" / "test" / "images" / f"{test_id}.jpg").convert("RGB"))
    core = RecordingProposer()
    memory = SupportMemory(backbone.dim, backbone_identity=backbone.identity)
    memory.add_class("sky", backbone.encode_text(["sky"])[0])
    Segmenter(backbone, memory, TestTimeAdapter(AdapterConfig(steps=2)), proposer=core, mode="region").segment(frame)

    assert len(harness.seen) == len(core.seen) == 1
    assert harness.seen[0].shape == (64, 96, 3) and harness.seen[0].dtype == np.uint8
    np.testing.assert_array_equal(harness.seen[0], core.seen[0])
    pil = np.asarray(Image.fromarray(frame).resize((96, 64), Image.BILINEAR))
    assert np.abs(pil.astype(int) - core.seen[0].astype(int)).max() > 10  # the old resize really differed


def test_partitions_cached_from_another_sam2_input_are_not_reused(tmp_path):
    """A partition cached before SAM 2 got the backbone's resize (keyed by the proposer alone) is
    recomputed, not taken for the current input."""
    import torch

    from rns_ros.eval.cache import FeatureCache

    maps = {s: [np.random.default_rng(1).integers(0, 11, (100, 150)) for _ in range(n)]
            for s, n in (("train", 2), ("test", 1))}
    write_camvid(tmp_path / "camvid", maps)
    backbone = build_backbone("test-tiny")

    def run(out, proposer):
        config = EvalConfig(datasets=("camvid",), root=str(tmp_path / "camvid"), out=str(tmp_path / out),
                            cache_dir=str(tmp_path / "cache"), methods=("zero-shot",), shots=(1,), mode="region",
                            progress=False, plots=False)
        run_evaluation(config, backbone=backbone, proposer=proposer, log=lambda _: None)

    run("first", RecordingProposer())
    [entry] = (tmp_path / "cache" / "regions").rglob("*.pt")
    stored = torch.load(entry, weights_only=True)
    key, partition = stored["key"], stored["payload"]["partition"].numpy()
    entry.unlink()
    old = FeatureCache(tmp_path / "cache", backbone.identity)  # as the cache was keyed before: proposer only
    old.partition(RecordingProposer.identity, key["namespace"], key["image_id"], lambda: np.zeros_like(partition))
    again = RecordingProposer()
    run("second", again)
    assert len(again.seen) == 1  # partitioned anew, the stale entry ignored
