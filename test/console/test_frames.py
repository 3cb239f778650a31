"""What the console keeps of the camera (rns_ros/console/frames.py): raw frames found by their
header and dropped once passed, pictures encoded once per overlay and downscaled, broken overlays
skipped, frozen frames and previews capped."""
from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image as PILImage

from messages import make_image, random_rgb
from rns_ros.console.frames import (MAX_FROZEN, CameraFeed, FrozenFrames, RawFrames, frame_key, frame_rgb)
from rns_ros.ros.inputs.compressed import encode_compressed
from sensor_msgs.msg import CompressedImage


def frame(i, h=6, w=8):
    return make_image(random_rgb(h, w, seed=i), "rgb8", stamp=(100 + i, 5), frame_id="cam")


def test_raw_frames_are_found_by_header_and_older_ones_dropped_with_it():
    frames = RawFrames(max_bytes=10 ** 6)
    for i in range(5):
        frames.add(frame(i))
    assert frames.take(frame_key(frame(2).header)).header.stamp.sec == 102
    assert len(frames) == 2  # 0 and 1 (never segmented now: the node took 2) went with it
    assert frames.take(frame_key(frame(1).header)) is None
    assert frames.take((103, 5, "other")) is None  # a frame_id must match too
    assert frames.take(frame_key(frame(4).header)) is not None and len(frames) == 0


def test_raw_frames_stay_within_their_bytes():
    frames = RawFrames(max_bytes=3 * 6 * 8 * 3)  # three 6x8 rgb8 frames
    for i in range(7):
        frames.add(frame(i))
    assert len(frames) == 3 and frames.dropped == 4
    assert frames.take(frame_key(frame(3).header)) is None and frames.take(frame_key(frame(4).header)) is not None


def test_frame_rgb_reads_raw_and_compressed_frames():
    rgb = random_rgb(6, 8, seed=3)
    np.testing.assert_array_equal(frame_rgb(make_image(rgb[:, :, ::-1].copy(), "bgr8")), rgb)
    data, fmt = encode_compressed(rgb, "png")
    np.testing.assert_array_equal(frame_rgb(CompressedImage(format=fmt, data=data)), rgb)


def test_pictures_are_encoded_once_per_overlay_downscaled_and_keep_their_raw_frame():
    feed = CameraFeed("default", "/rns/overlay", fps=30.0, max_width=40, quality=80)
    overlay = make_image(random_rgb(60, 80, seed=1), "rgb8", stamp=(7, 8), frame_id="cam")
    raw = object()
    feed.on_overlay(overlay, raw)

    async def run():
        first = await feed.next_picture(0, timeout=5)
        again = await feed.next_picture(0, timeout=5)
        none = await feed.next_picture(first.seq, timeout=0.05)  # nothing newer arrives
        return first, again, none
    first, again, none = asyncio.run(run())
    assert first is again and none is None and first.raw is raw and first.key == (7, 8, "cam")
    assert (first.width, first.height) == (80, 60)  # the frame's own size: the coordinates' frame
    assert PILImage.open(io.BytesIO(first.jpeg)).size == (40, 30)  # downscaled, aspect kept
    assert feed.picture(first.seq) is first and feed.picture(first.seq + 1) is None


def test_a_broken_overlay_is_skipped_and_counted():
    feed = CameraFeed("default", "/rns/overlay", fps=30.0, max_width=40, quality=80)
    broken = make_image(random_rgb(6, 8, seed=1), "rgb8")
    broken.data = bytes(10)  # truncated
    feed.on_overlay(broken, None)
    assert asyncio.run(feed.next_picture(0, timeout=0.2)) is None
    assert feed.bad_overlays == 1 and "overlay not shown" in feed.last_problem
    feed.on_overlay(frame(1), None)
    assert asyncio.run(feed.next_picture(0, timeout=5)).key == (101, 5, "cam")


def test_frozen_frames_and_previews_are_capped_and_released():
    store = FrozenFrames()
    frozen = [store.freeze("default", frame(i)) for i in range(MAX_FROZEN + 2)]
    assert store.get(frozen[0].id) is None and store.get(frozen[-1].id) is frozen[-1]
    np.testing.assert_array_equal(frozen[-1].rgb, random_rgb(6, 8, seed=MAX_FROZEN + 1))
    preview = store.add_preview(frozen[-1].id, "mug", np.ones((6, 8), bool))
    assert store.preview(preview.id) is preview
    assert store.release(frozen[-1].id) and store.preview(preview.id) is None  # its previews go with it
    assert not store.release(frozen[-1].id)


def test_a_forgotten_feed_shows_nothing_stale_and_keeps_counting():
    feed = CameraFeed("default", "/rns/overlay", fps=30.0, max_width=40, quality=80)
    feed.on_overlay(frame(1), None)
    first = asyncio.run(feed.next_picture(0, timeout=5))
    feed.on_overlay(frame(2), None)
    feed.forget()  # the console let go of the overlay: picture 1 and overlay 2 are stale now
    assert feed.latest() is None and asyncio.run(feed.next_picture(0, timeout=0.05)) is None
    feed.on_overlay(frame(3), None)
    fresh = asyncio.run(feed.next_picture(0, timeout=5))
    assert fresh.key == (103, 5, "cam") and fresh.seq > first.seq
