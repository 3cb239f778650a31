"""Resize, pad and sliding-window averaging, checked against brute-force recomputation."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.sliding import (ResolutionConfig, image_to_tensor, multi_pass_features,
                                            pad_to_multiple, resize_short_side, resized_size,
                                            sliding_window_features, sliding_window_features_batch,
                                            window_starts)

P = 16


def fake_encoder(calls=None):
    """Patch features that depend on the patch's pixels, its position *inside the window* and the
    whole window's content, so that every window gives a different feature for the same patch."""

    def encode(crops):
        if calls is not None:
            calls.append(tuple(crops.shape))
        b, _, h, w = crops.shape
        gh, gw = h // P, w // P
        pooled = F.avg_pool2d(crops, P)  # (B, 3, gh, gw)
        gy, gx = torch.meshgrid(torch.arange(gh, dtype=torch.float32),
                                torch.arange(gw, dtype=torch.float32), indexing="ij")
        pos = torch.stack([torch.sin(0.7 * gy + 0.1), torch.cos(0.3 * gx), 0.5 + 0.1 * gx * gy])
        ctx = crops.mean((2, 3))[:, :, None, None].expand(b, 3, gh, gw)
        feats = torch.cat([pooled, pos[None].expand(b, -1, -1, -1), ctx], dim=1)
        return (3.0 * feats).permute(0, 2, 3, 1)  # deliberately not unit norm

    return encode


def brute_force(image, encode, crop, stride):
    """Per patch: average of the normalised features of every window containing it."""
    _, h, w = image.shape

    def starts(length):  # enumerate positions independently of window_starts
        if length <= crop:
            return [0]
        out, y = [], 0
        while y + crop < length:
            out.append(y)
            y += stride
        out.append(length - crop)
        return sorted(set(out))

    ch, cw = min(crop, h), min(crop, w)
    gh, gw = h // P, w // P
    out = torch.zeros(gh, gw, 9)
    window_feats = {(y, x): encode(image[None, :, y:y + ch, x:x + cw])[0]
                    for y in starts(h) for x in starts(w)}
    for i in range(gh):
        for j in range(gw):
            acc = []
            for (y, x), f in window_feats.items():
                if y <= i * P < y + ch and x <= j * P < x + cw:
                    acc.append(F.normalize(f[(i * P - y) // P, (j * P - x) // P], dim=0))
            out[i, j] = F.normalize(torch.stack(acc).mean(0), dim=0)
    return out


def test_resized_size_short_side_and_cap():
    assert resized_size((480, 640), 448, 2048) == (448, 597)  # 640 * 448 / 480 = 597.3
    assert resized_size((640, 480), 448, 2048) == (597, 448)
    assert resized_size((224, 224), 448, 2048) == (448, 448)
    assert resized_size((100, 5000), 448, 2048) == (41, 2048)  # long side capped: 100 * 2048 / 5000
    with pytest.raises(ValueError):
        resized_size((0, 10), 448, 2048)


def test_window_starts_follow_the_formula():
    assert window_starts(608, 448, 224) == [0, 160]  # ceil(160/224)+1 = 2, last shifted to the border
    assert window_starts(1000, 448, 224) == [0, 224, 448, 552]
    assert window_starts(448, 448, 224) == [0]
    assert window_starts(300, 448, 224) == [0]
    for length in range(448, 1400, 16):
        s = window_starts(length, 448, 224)
        assert len(s) == math.ceil((length - 448) / 224) + 1
        assert s[-1] + 448 == length and s[0] == 0


def test_resize_is_bilinear_and_pad_is_zero():
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    t = resize_short_side(img, 60, 2048)
    assert t.shape == (3, 60, 80)
    # exact 2x upscale, align_corners=False: output pixel (1, 1) sits at source (0.25, 0.25)
    src = img.astype(np.float64) / 255
    expect = 0.75 * 0.75 * src[0, 0] + 0.75 * 0.25 * (src[0, 1] + src[1, 0]) + 0.25 * 0.25 * src[1, 1]
    np.testing.assert_allclose(t[:, 1, 1].numpy(), expect, atol=1e-6)
    padded = pad_to_multiple(t, 16)
    assert padded.shape == (3, 64, 80)
    assert torch.equal(padded[:, :60], t) and bool((padded[:, 60:] == 0).all())
    with pytest.raises(ValueError):
        image_to_tensor(img.astype(np.float32))


@pytest.mark.parametrize("size,crop,stride", [((96, 128), 64, 32), ((64, 176), 64, 48), ((112, 80), 48, 16)])
def test_sliding_average_matches_brute_force(size, crop, stride):
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(1))
    encode = fake_encoder()
    got = sliding_window_features(image, encode, P, crop, stride, max_batch=3)
    expect = brute_force(image, encode, crop, stride)
    assert got.shape == (size[0] // P, size[1] // P, 9)
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(got.shape[:2]))


def test_image_smaller_than_crop_is_one_window():
    calls = []
    image = torch.rand(3, 48, 80, generator=torch.Generator().manual_seed(2))
    encode = fake_encoder(calls)
    got = sliding_window_features(image, encode, P, 448, 224)
    assert calls == [(1, 3, 48, 80)]
    torch.testing.assert_close(got, F.normalize(encode(image[None])[0], dim=-1))


def test_batch_of_images_shares_calls_and_matches_each_image_alone():
    """Three camera frames (two of one size, one smaller than the crop): windows of one size go
    through the encoder together, and every image gets what it would get alone."""
    gen = torch.Generator().manual_seed(4)
    images = [torch.rand(3, 96, 128, generator=gen), torch.rand(3, 48, 48, generator=gen),
              torch.rand(3, 96, 128, generator=gen)]
    calls = []
    got = sliding_window_features_batch(images, fake_encoder(calls), P, 64, 32, max_batch=16)
    # 96x128 with 64/32 windows: 2 x 3 = 6 windows each -> 12 in one call; the 48x48 image: 1 window.
    assert sorted(calls) == sorted([(12, 3, 64, 64), (1, 3, 48, 48)])
    for image, features in zip(images, got):
        torch.testing.assert_close(features, brute_force(image, fake_encoder(), 64, 32), atol=1e-5, rtol=1e-5)
    calls.clear()
    sliding_window_features_batch(images, fake_encoder(calls), P, 64, 32, max_batch=5)
    assert [c[0] for c in calls if c[2:] == (64, 64)] == [5, 5, 2]  # chunks span images
    assert sliding_window_features_batch([], fake_encoder(), P, 64, 32) == []


def test_support_protocol_averages_two_passes():
    image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(3))
    encode = fake_encoder()
    got = multi_pass_features(image, encode, P, (64, 32), 16)
    a = brute_force(image, encode, 64, 16)
    b = brute_force(image, encode, 32, 16)
    torch.testing.assert_close(got, F.normalize((a + b) / 2, dim=-1), atol=1e-5, rtol=1e-5)


def test_unpadded_image_and_bad_encoder_are_refused():
    with pytest.raises(ValueError, match="multiple of the patch"):
        sliding_window_features(torch.rand(3, 50, 64), fake_encoder(), P, 64, 32)
    with pytest.raises(ValueError, match="crop encoder returned"):
        sliding_window_features(torch.rand(3, 64, 64), lambda c: torch.rand(c.shape[0], 2, 2, 4), P, 64, 32)


def test_resolution_config_validation():
    ResolutionConfig().validate(16)
    assert ResolutionConfig().describe() == "S448-L2048-test448/224-support448+224/112"
    for bad in (dict(test_crop=440), dict(test_stride=0), dict(support_crops=()),
                dict(support_crops=(448, 200)), dict(test_stride=464), dict(max_long_side=100),
                dict(support_stride=240, support_crops=(448, 224))):
        with pytest.raises(ValueError):
            ResolutionConfig(**bad).validate(16)


def test_image_to_tensor_accepts_views_without_warnings():
    """Read-only buffers (ROS messages), flipped views and strided crops give the same tensor as
    a plain copy, with no warning (the read-only buffer is only read by the float conversion)."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    expected = torch.from_numpy(base.copy()).permute(2, 0, 1).float() / 255.0

    read_only = base.copy()
    read_only.flags.writeable = False
    flipped = base[::-1].copy()[::-1]          # negative strides
    padded = np.zeros((7, 12, 3), np.uint8)
    padded[:, :9] = base
    strided = padded[:, :9]                    # row padding, like a message's `step`
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for view in (read_only, flipped, strided):
            assert torch.equal(image_to_tensor(view), expected)
    assert not read_only.flags.writeable  # the caller's array is untouched
