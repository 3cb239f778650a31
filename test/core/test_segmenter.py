"""Segmenter: upsampling geometry, region mode, teaching calls, refusals (fakes + real parts)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.backbones.sliding import resized_size
from rns_ros.core.segmenter import STAGES, Segmentation, Segmenter

P = 16


class FakeBackbone:
    """Short side 32, patch 16, d = 6; features are a seeded function of the padded grid size."""

    identity = "fake"
    dim = 6
    patch_size = P
    device = torch.device("cpu")

    def __init__(self):
        self.text_calls = []

    def encode_image(self, image, *, support=False):
        size = resized_size(image.shape[:2], 32, 512)
        gh, gw = -(-size[0] // P), -(-size[1] // P)
        g = torch.Generator().manual_seed(gh * 100 + gw + int(support))
        feats = F.normalize(torch.randn(gh, gw, self.dim, generator=g), dim=-1)
        return DenseFeatures(feats, (image.shape[0], image.shape[1]), size, P)

    def encode_text(self, prompts):
        self.text_calls.append(list(prompts))
        return F.normalize(torch.ones(len(prompts), self.dim), dim=-1)


class FakeMemory:
    def __init__(self, class_ids=(), dim=6):
        self.class_ids = list(class_ids)
        self.dim = dim
        self.version = 7
        self.backbone_identity = None
        self.added_classes, self.added_features = [], []

    def add_class(self, name, text_feature=None, *, prompt=None):
        self.added_classes.append((name, text_feature, prompt))
        cid = max(self.class_ids, default=0) + 1
        self.class_ids.append(cid)
        return cid

    def add_image_features(self, feats, class_ids, *, exemplar=None):
        self.added_features.append((feats, class_ids, exemplar))
        return len(self.added_features)


class FixedAdapter:
    """Returns seeded random probabilities and records its queries."""

    def __init__(self):
        self.queries = []

    def predict(self, queries, memory):
        self.queries.append(queries)
        g = torch.Generator().manual_seed(queries.shape[0])
        return torch.softmax(3 * torch.randn(queries.shape[0], len(memory.class_ids), generator=g), dim=1)


def bilinear_matrix(n_in, n_out):
    """(n_out, n_in) bilinear resampling matrix, align_corners=False (source clamped at 0)."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[o, i0] += 1 - lam
        m[o, i1] += lam
    return m


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_patch_mode_upsampling_geometry():
    memory, adapter = FakeMemory([2, 5, 9]), FixedAdapter()
    seg = Segmenter(FakeBackbone(), memory, adapter)
    out = seg.segment(image(20, 35))
    # resized to 32 x 56, padded to 32 x 64 = 2 x 4 patches
    grid_probs = adapter.predict(adapter.queries[0], memory).numpy().T.reshape(3, 2, 4)
    padded = np.einsum("yi,cij,xj->cyx", bilinear_matrix(2, 32), grid_probs, bilinear_matrix(4, 64))
    cropped = padded[:, :32, :56]
    expect = np.einsum("yi,cij,xj->cyx", bilinear_matrix(32, 20), cropped, bilinear_matrix(56, 35))
    assert isinstance(out, Segmentation)
    assert out.probabilities.shape == (3, 20, 35) and out.probabilities.dtype == np.float32
    np.testing.assert_allclose(out.probabilities, expect, atol=1e-5)
    assert out.labels.dtype == np.int32 and out.labels.shape == (20, 35)
    np.testing.assert_array_equal(out.labels, np.array([2, 5, 9])[expect.argmax(0)])
    np.testing.assert_allclose(out.probabilities.sum(0), 1.0, atol=1e-5)
    assert out.class_ids == [2, 5, 9] and out.support_version == 7
    assert set(out.timings) == set(STAGES) and all(v >= 0 for v in out.timings.values())
    assert adapter.queries[0].shape == (8, 6)


def test_no_classes_gives_zero_labels_and_empty_probabilities():
    adapter = FixedAdapter()
    out = Segmenter(FakeBackbone(), FakeMemory([]), adapter).segment(image(9, 11))
    assert out.labels.shape == (9, 11) and out.labels.dtype == np.int32 and not out.labels.any()
    assert out.probabilities.shape == (0, 9, 11) and out.probabilities.dtype == np.float32
    assert out.class_ids == [] and adapter.queries == []


class FakeProposer:
    def __init__(self):
        self.images = []

    def partition(self, img):
        self.images.append(img)
        h, w = img.shape[:2]
        part = np.zeros((h, w), np.int64)
        part[:, w // 3:] = 2  # region 1 has no pixel: it must be left out of the queries
        part[h // 2:, : w // 3] = 3
        return part


def test_region_mode_queries_and_pixel_probabilities():
    backbone, memory, adapter, proposer = FakeBackbone(), FakeMemory([1, 4]), FixedAdapter(), FakeProposer()
    seg = Segmenter(backbone, memory, adapter, proposer=proposer, mode="region")
    img = image(24, 40, seed=1)
    out = seg.segment(img)
    resized = (32, 53)
    assert proposer.images[0].shape == (*resized, 3) and proposer.images[0].dtype == np.uint8
    part = proposer.partition(np.zeros((*resized, 3), np.uint8))
    dense = backbone.encode_image(img)
    # eq. 13 by a pixel loop: S_jr = pixels of r in patch j / pixels of r
    expect_q = []
    feats = dense.features.numpy().astype(np.float64)
    for r in (0, 2, 3):
        ys, xs = np.nonzero(part == r)
        acc = feats[ys // P, xs // P].sum(0) / len(ys)  # every pixel adds its patch's feature
        expect_q.append(torch.tensor(acc / np.linalg.norm(acc), dtype=torch.float32))
    torch.testing.assert_close(adapter.queries[0], torch.stack(expect_q), atol=1e-5, rtol=1e-5)
    probs = adapter.predict(adapter.queries[0], memory).numpy()
    rows = (np.arange(24)[:, None] + 0.5) * resized[0] / 24
    cols = (np.arange(40)[None, :] + 0.5) * resized[1] / 40
    region_of_pixel = part[rows.astype(int), cols.astype(int)]  # nearest-exact
    lookup = {0: 0, 2: 1, 3: 2}
    expect = np.stack([probs[lookup[r]] for r in region_of_pixel.ravel()]).T.reshape(2, 24, 40)
    np.testing.assert_allclose(out.probabilities, expect, atol=1e-6)
    np.testing.assert_array_equal(out.labels, np.array([1, 4])[expect.argmax(0)])


def test_add_class_encodes_text_unless_told_not_to():
    backbone, memory = FakeBackbone(), FakeMemory()
    seg = Segmenter(backbone, memory, FixedAdapter())
    a = seg.add_class("car")
    b = seg.add_class("bike", prompt="a bicycle")
    c = seg.add_class("thing", use_text=False)
    assert (a, b, c) == (1, 2, 3)
    assert backbone.text_calls == [["car"], ["a bicycle"]]
    assert memory.added_classes[1][2] == "a bicycle" and memory.added_classes[2][1] is None
    assert memory.added_classes[0][1].shape == (6,)
    with pytest.raises(ValueError, match="use_text=False"):
        seg.add_class(None)


def test_add_exemplar_pools_the_mask_and_refuses_unknown_classes():
    memory = FakeMemory([1, 2])
    seg = Segmenter(FakeBackbone(), memory, FixedAdapter())
    img = image(32, 32)
    mask = np.zeros((32, 32), np.uint8)
    mask[:16, :16] = 1  # exactly patch (0, 0) at the fake's short side 32
    assert seg.add_exemplar(img, mask, class_id=2) == 1
    feats, ids, ex = memory.added_features[0]
    assert ids == [2] and ex.class_ids() == [2]
    support = FakeBackbone().encode_image(img, support=True).features
    torch.testing.assert_close(feats[0], support[0, 0])
    labels = np.zeros((32, 32), np.int64)
    labels[:, 16:] = 9
    with pytest.raises(ValueError, match="unknown class ids"):
        seg.add_exemplar(img, labels)
    with pytest.raises(ValueError):
        seg.add_exemplar(img, np.zeros((32, 32), np.uint8), class_id=1)
    assert len(memory.added_features) == 1


class BadAdapter:
    def predict(self, queries, memory):
        return torch.ones(queries.shape[0], len(memory.class_ids) + 1)


def test_refusals():
    with pytest.raises(ValueError, match="mode"):
        Segmenter(FakeBackbone(), FakeMemory(), FixedAdapter(), mode="pixel")
    with pytest.raises(ValueError, match="proposer"):
        Segmenter(FakeBackbone(), FakeMemory(), FixedAdapter(), mode="region")
    with pytest.raises(ValueError, match="dim"):
        Segmenter(FakeBackbone(), FakeMemory(dim=5), FixedAdapter())
    other = FakeMemory()
    other.backbone_identity = "another backbone"
    with pytest.raises(ValueError, match="re-encode"):
        Segmenter(FakeBackbone(), other, FixedAdapter())
    seg = Segmenter(FakeBackbone(), FakeMemory([1]), BadAdapter())
    with pytest.raises(RuntimeError, match="adapter returned"):
        seg.segment(image(16, 16))
    with pytest.raises(ValueError, match="uint8"):
        seg.segment(np.zeros((16, 16, 3), np.float32))


@pytest.fixture(scope="module")
def tiny_backbone():
    from rns_ros.core.backbones import build_backbone

    return build_backbone("test-tiny")


def real_parts(backbone):
    from rns_ros.core.adapter.config import AdapterConfig
    from rns_ros.core.adapter.test_time import TestTimeAdapter
    from rns_ros.core.memory.support import SupportMemory

    memory = SupportMemory(dim=backbone.dim, backbone_identity=backbone.identity)
    return memory, TestTimeAdapter(AdapterConfig(steps=20))


def two_tone_image():
    img = np.zeros((40, 56, 3), np.uint8)
    img[:, :28] = (200, 30, 30)
    img[:, 28:] = (30, 30, 200)
    img += np.random.default_rng(3).integers(0, 20, img.shape, dtype=np.uint8)
    return img


def teach_two_tones(seg, img):
    red, blue = seg.add_class("red"), seg.add_class("blue")
    labels = np.zeros(img.shape[:2], np.int64)
    labels[:, :28], labels[:, 28:] = red, blue
    return red, blue, seg.add_exemplar(img, labels)


def test_end_to_end_tiny_backbone_real_memory_and_adapter(tiny_backbone):
    backbone = tiny_backbone
    memory, adapter = real_parts(backbone)
    seg = Segmenter(backbone, memory, adapter)
    img = two_tone_image()
    assert seg.segment(img).class_ids == []
    seg.add_class("green")
    assert seg.segment(img).class_ids == [1]  # text only: zero-shot path
    red, blue, eid = teach_two_tones(seg, img)
    assert memory.exemplar_ids == [eid] and memory.num_features == 2
    out = seg.segment(img)
    assert out.class_ids == [1, red, blue] and out.support_version == memory.version
    assert out.labels.shape == (40, 56) and set(np.unique(out.labels)) <= {1, red, blue}
    np.testing.assert_allclose(out.probabilities.sum(0), 1.0, atol=1e-5)
    # the segmenter is exactly: adapter on the patch features, then the upsampling
    from rns_ros.core.segmenter import upsample_patch_probabilities

    dense = backbone.encode_image(img)
    probs = adapter.predict(dense.flat(), memory)
    np.testing.assert_allclose(out.probabilities, upsample_patch_probabilities(probs, dense).numpy(), atol=1e-5)
    again = seg.segment(img)
    np.testing.assert_array_equal(again.labels, out.labels)  # seeded adapter: deterministic


def test_end_to_end_region_mode_with_real_memory(tiny_backbone):
    memory, adapter = real_parts(tiny_backbone)
    seg = Segmenter(tiny_backbone, memory, adapter, proposer=FakeProposer(), mode="region")
    img = two_tone_image()
    teach_two_tones(seg, img)
    out = seg.segment(img)
    assert out.probabilities.shape == (2, 40, 56)
    np.testing.assert_allclose(out.probabilities.sum(0), 1.0, atol=1e-5)
    # every pixel carries its region's probabilities: at most 3 distinct probability vectors
    assert len(np.unique(out.probabilities.reshape(2, -1).round(6), axis=1).T) <= 3


@pytest.mark.parametrize("mode", ["patch", "region"])
def test_a_frame_is_converted_to_a_tensor_once(tiny_backbone, monkeypatch, mode):
    """The backbone converts and resizes the frame; region mode hands that same resized image to
    SAM 2 instead of converting the frame again, and validation converts nothing."""
    import rns_ros.core.backbones.dense as dense_module
    import rns_ros.core.backbones.sliding as sliding_module
    from rns_ros.core.backbones.sliding import image_to_tensor

    memory, adapter = real_parts(tiny_backbone)
    proposer = FakeProposer()
    seg = Segmenter(tiny_backbone, memory, adapter, proposer=proposer, mode=mode)
    img = two_tone_image()
    teach_two_tones(seg, img)
    conversions = []

    def counting(image, device="cpu"):
        conversions.append(image.shape)
        return image_to_tensor(image, device)

    monkeypatch.setattr(dense_module, "image_to_tensor", counting)  # the backbones' conversion
    monkeypatch.setattr(sliding_module, "image_to_tensor", counting)  # proposal_input's fallback
    seg.segment(img)
    assert conversions == [img.shape]
    if mode == "region":
        resized = tiny_backbone.encode_image(img).resized_image
        expected = (resized * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(proposer.images[-1], expected)


def test_segment_batch_equals_segmenting_each_frame_alone(tiny_backbone):
    """Several cameras' frames (two sizes) in one batch: the backbone is called with their windows
    together, and every frame gets the result it gets alone."""
    memory, adapter = real_parts(tiny_backbone)
    seg = Segmenter(tiny_backbone, memory, adapter)
    seg.add_class("green")
    teach_two_tones(seg, two_tone_image())
    frames = [two_tone_image(), image(40, 56, seed=5), image(64, 96, seed=6)]
    calls = []
    encode_crops = tiny_backbone.encode_crops
    tiny_backbone.encode_crops = lambda crops: (calls.append(crops.shape[0]), encode_crops(crops))[1]
    try:
        batch = seg.segment_batch(frames)
        batch_calls, calls[:] = list(calls), []
        alone = [seg.segment(f) for f in frames]
    finally:
        del tiny_backbone.encode_crops
    assert len(batch_calls) < len(calls)  # shared model calls
    assert sum(batch_calls) == sum(calls)  # the same windows
    for got, ref, frame in zip(batch, alone, frames):
        assert got.labels.shape == frame.shape[:2] and got.class_ids == ref.class_ids
        np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-4)
        top2 = np.sort(ref.probabilities, axis=0)[-2:]
        clear = (top2[1] - top2[0]) > 1e-3  # float rounding may only flip near-ties
        np.testing.assert_array_equal(got.labels[clear], ref.labels[clear])
        assert got.support_version == memory.version and got.timings["features"] > 0
    assert seg.segment_batch([]) == []
    with pytest.raises(ValueError):
        seg.segment_batch([frames[0], frames[0].astype(np.float32)])  # every frame checked first


@pytest.mark.parametrize("mode", ["patch", "region"])
def test_only_the_label_and_confidence_maps_are_copied_to_the_host(tiny_backbone, monkeypatch, mode):
    """Issue 27: on a GPU the (C, H, W) probabilities never travel to the host unless asked for.
    Counted here on the CPU through every tensor -> host conversion the pipeline could use (with
    the torch retrieval index, what a GPU runs): of the frame-sized ones, only the (H, W) label and
    confidence maps; `probabilities` makes its one (C, H, W) copy when read."""
    from rns_ros.core.adapter.config import AdapterConfig
    from rns_ros.core.adapter.test_time import TestTimeAdapter
    from rns_ros.core.memory.support import SupportMemory

    memory = SupportMemory(dim=tiny_backbone.dim, backbone_identity=tiny_backbone.identity, index_backend="torch")
    seg = Segmenter(tiny_backbone, memory, TestTimeAdapter(AdapterConfig(steps=20)), proposer=FakeProposer(), mode=mode)
    seg.add_class("green")
    teach_two_tones(seg, two_tone_image())
    frame = image(60, 90, seed=4)
    copies = []
    for name in ("cpu", "numpy", "tolist", "__array__"):
        original = getattr(torch.Tensor, name)

        def counting(tensor, *args, _original=original, **kwargs):
            if tensor.numel() >= 60 * 90:  # frame-sized
                copies.append((tuple(tensor.shape), tensor.dtype))
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    out = seg.segment(frame)
    maps = [c for c in copies if c[0] == (60, 90)]
    assert [c for c in copies if c not in maps and c[1] != torch.uint8] == []  # uint8: SAM 2's input image
    assert sorted(str(dtype) for _, dtype in maps) == ["torch.float32", "torch.float32", "torch.int32", "torch.int32"]
    copies.clear()
    probabilities = out.probabilities
    assert copies == [((3, 60, 90), torch.float32)] * 2 and out.probabilities is probabilities  # made once
    monkeypatch.undo()
    np.testing.assert_allclose(out.confidence, probabilities.max(0), atol=0)
    top2 = np.sort(probabilities, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-6
    np.testing.assert_array_equal(out.labels[clear], np.array(out.class_ids)[probabilities.argmax(0)][clear])
