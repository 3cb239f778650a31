"""Image <-> numpy conversions, checked against messages built by hand (test/ros/messages.py)."""
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from messages import make_image, random_rgb
from rns_ros.ros.conversions import (FrameError, confidence_from_image, confidence_to_image, image_to_rgb,
                                     label_encoding, labels_from_image, labels_to_image, mask_from_image,
                                     rgb_to_image, unlabel_below)

RGB = random_rgb(5, 7, seed=3)


@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("encoding, pixels", [
    ("rgb8", RGB),
    ("bgr8", RGB[:, :, ::-1]),
    ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)])),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full(RGB.shape[:2], 7, np.uint8)])),
])
def test_colour_encodings_decode_to_rgb_with_row_padding(encoding, pixels, pad):
    out = image_to_rgb(make_image(np.ascontiguousarray(pixels), encoding, pad=pad))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_mono8_is_replicated_to_three_channels():
    gray = RGB[:, :, 1].copy()
    out = image_to_rgb(make_image(gray, "mono8", pad=1))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgr16"])
def test_16bit_encodings_honour_endianness(encoding, bigendian):
    rng = np.random.default_rng(1)
    channels = 1 if encoding == "mono16" else 3
    values = rng.integers(0, 65536, size=(4, 6, channels), dtype=np.uint16)
    out = image_to_rgb(make_image(values if channels == 3 else values[:, :, 0], encoding, pad=2,
                                  bigendian=bigendian))
    high = (values // 256).astype(np.uint8)  # the high byte, computed independently
    expected = {"mono16": np.repeat(high, 3, axis=2), "rgb16": high, "bgr16": high[:, :, ::-1]}[encoding]
    np.testing.assert_array_equal(out, expected)


def test_last_row_without_padding_is_accepted():
    msg = make_image(RGB, "rgb8", pad=5)
    msg.data = bytes(msg.data)[:-5]  # some drivers omit the final row's padding
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding"),
    (lambda m: setattr(m, "encoding", "32FC1"), "unsupported encoding"),
    (lambda m: setattr(m, "width", 0), "empty image"),
    (lambda m: setattr(m, "height", 0), "empty image"),
    (lambda m: setattr(m, "step", 20), "step 20 is smaller"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "truncated"),
    (lambda m: setattr(m, "data", b""), "truncated"),
    (lambda m: setattr(m, "height", 6), "truncated"),
])
def test_bad_frames_raise_frame_error_with_reason(mutate, reason):
    msg = make_image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(FrameError, match=reason):
        image_to_rgb(msg)


def _decode_by_hand(msg: Image, dtype) -> np.ndarray:
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return raw[:, : msg.width * np.dtype(dtype).itemsize].copy().view(dtype)


def test_labels_mono8_until_255_then_mono16():
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 5, 6
    labels = np.array([[0, 1, 255], [3, 0, 2]], dtype=np.int32)
    msg = labels_to_image(labels, header)
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("mono8", 3, 2, 3)
    assert msg.header.frame_id == "cam" and msg.header.stamp.sec == 5
    np.testing.assert_array_equal(_decode_by_hand(msg, np.uint8), labels)

    big = labels.copy()
    big[0, 0] = 300
    msg16 = labels_to_image(big, header)
    assert (msg16.encoding, msg16.step, msg16.is_bigendian) == ("mono16", 6, 0)
    np.testing.assert_array_equal(_decode_by_hand(msg16, "<u2"), big)
    np.testing.assert_array_equal(labels_from_image(msg16), big)


def test_label_encoding_follows_the_largest_existing_id_not_the_frame():
    # A frame showing only class 1 while class 300 exists is still mono16: consumers see one encoding.
    msg = labels_to_image(np.ones((2, 2), np.int32), Header(), max_class_id=300)
    assert msg.encoding == "mono16"
    assert label_encoding(255) == "mono8" and label_encoding(256) == "mono16"
    with pytest.raises(ValueError, match="does not fit"):
        label_encoding(65536)
    with pytest.raises(ValueError, match="above max_class_id"):
        labels_to_image(np.full((2, 2), 9, np.int32), Header(), max_class_id=3)


def test_confidence_and_rgb_round_trip():
    conf = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    msg = confidence_to_image(conf, Header())
    assert (msg.encoding, msg.step) == ("32FC1", 16)
    np.testing.assert_array_equal(_decode_by_hand(msg, "<f4"), conf)
    np.testing.assert_array_equal(confidence_from_image(msg), conf)
    rgb_msg = rgb_to_image(RGB, Header())
    assert (rgb_msg.encoding, rgb_msg.step) == ("rgb8", 21)
    np.testing.assert_array_equal(image_to_rgb(rgb_msg), RGB)


def test_mono8_confidence_is_probability_times_255_rounded():
    conf = np.array([[0.0, 1.0, 0.5, 0.498], [0.002, 0.7, -0.1, 1.2]], np.float32)
    msg = confidence_to_image(conf, Header(frame_id="cam"), "mono8")
    assert (msg.encoding, msg.step, msg.height, msg.width, msg.header.frame_id) == ("mono8", 4, 2, 4, "cam")
    # round(0.5 * 255) = round(127.5): numpy's round-half-even gives 128; 0.498 * 255 = 126.99 -> 127
    assert bytes(msg.data) == bytes([0, 255, 128, 127, 1, 178, 0, 255])
    np.testing.assert_allclose(confidence_from_image(msg), np.clip(conf, 0, 1), atol=0.5 / 255 + 1e-7)
    with pytest.raises(ValueError, match="confidence encoding"):
        confidence_to_image(conf, Header(), "16UC1")


def test_unlabel_below_sets_low_confidence_pixels_to_zero():
    labels = np.array([[3, 3, 5], [5, 0, 7]], np.int32)
    conf = np.array([[0.2, 0.6, 0.59], [0.61, 0.9, 0.6]], np.float32)
    out = unlabel_below(labels, conf, 0.6)
    np.testing.assert_array_equal(out, [[0, 3, 0], [5, 0, 7]])  # 0.6 itself is kept
    assert out.dtype == np.int32 and labels[0, 0] == 3  # input untouched
    assert unlabel_below(labels, conf, 0.0) is labels  # 0 = off, no copy
    with pytest.raises(ValueError, match="differ in shape"):
        unlabel_below(labels, conf[:1], 0.5)


def test_big_endian_labels_from_other_publishers_decode():
    labels = np.array([[1, 700], [65535, 0]], dtype=np.uint16)
    msg = make_image(labels, "mono16", bigendian=True, pad=4)
    np.testing.assert_array_equal(labels_from_image(msg), labels.astype(np.int32))


def test_mask_decoding():
    mask = np.array([[0, 3], [255, 0]], np.uint8)
    np.testing.assert_array_equal(mask_from_image(make_image(mask, "mono8", pad=2)), mask != 0)
    with pytest.raises(FrameError, match="mono8"):
        mask_from_image(make_image(RGB, "rgb8"))
