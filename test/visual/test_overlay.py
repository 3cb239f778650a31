"""Overlay blending, contours, the colourised label image, and render_overlay as a whole."""
import numpy as np
import pytest

from rns_ros.visual.legend import LegendStyle
from rns_ros.visual.overlay import OverlayStyle, blend, color_lut, colorize, contour_mask, render_overlay
from rns_ros.visual.palette import Palette, parse_palette


def test_blend_mixes_class_colours_and_leaves_unlabeled_pixels():
    palette = Palette()
    table = palette.table([1, 5])
    rgb = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, 1], [5, 0]])
    out = blend(rgb, labels, table, alpha=0.25)
    expected = rgb.astype(float)
    for (y, x), cid in np.ndenumerate(labels):
        if cid:
            expected[y, x] = 0.75 * 100 + 0.25 * np.array(palette.color(cid))
    # fixed-point rounding may differ from float rounding by one level, never more
    assert np.abs(out.astype(int) - np.rint(expected)).max() <= 1
    np.testing.assert_array_equal(out[labels == 0], rgb[labels == 0])  # unlabeled: untouched
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    big_labels = rng.integers(0, 6, (40, 50))
    for alpha in (0.0, 0.3, 1.0):
        got = blend(big, big_labels, table, alpha).astype(float)
        want = np.where((big_labels > 0)[:, :, None], (1 - alpha) * big + alpha * table[big_labels], big)
        assert np.abs(got - want).max() <= 1.0, alpha
    with pytest.raises(ValueError, match="no colour"):
        blend(rgb, np.full((2, 2), 9), table, 0.5)
    with pytest.raises(ValueError, match="differ in size"):
        blend(rgb, np.zeros((3, 2), int), table, 0.5)


def test_colorize_is_the_palette_colour_per_pixel_in_rgb_order():
    palette = parse_palette(["#ff0000", "#00ff00", "#0000ff"])
    labels = np.array([[0, 1, 2, 3]])
    out = colorize(labels, color_lut(palette, 4))
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    assert out[0].tolist() == [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]  # channel 0 is red
    with pytest.raises(ValueError, match="no colour"):
        colorize(np.array([[4]]), color_lut(palette, 4))


def test_contour_mask_marks_labelled_pixels_next_to_another_id():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (9, 11))
    expected = np.zeros(labels.shape, bool)
    for y in range(9):
        for x in range(11):
            neighbours = [labels[y + dy, x + dx] for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
                          if 0 <= y + dy < 9 and 0 <= x + dx < 11]
            expected[y, x] = labels[y, x] > 0 and any(n != labels[y, x] for n in neighbours)
    np.testing.assert_array_equal(contour_mask(labels), expected)


def test_render_overlay_is_blend_plus_contours_plus_legend():
    palette = Palette()
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    labels = np.zeros((120, 160), np.int32)
    labels[:, 80:] = 1
    labels[60:, :40] = 2
    table = color_lut(palette, 3)
    plain, none = render_overlay(rgb, labels, {}, palette, OverlayStyle(alpha=0.4, legend=None))
    assert none is None
    np.testing.assert_array_equal(plain, blend(rgb, labels, table, 0.4))
    contoured, _ = render_overlay(rgb, labels, {}, palette, OverlayStyle(alpha=0.4, legend=None, contours=True))
    edge = contour_mask(labels)
    assert edge.any() and (contoured[edge] == table[labels[edge]]).all()  # boundaries in the pure colour
    np.testing.assert_array_equal(contoured[~edge], plain[~edge])
    with_legend, drawn = render_overlay(rgb, labels, {1: "road", 2: "car"}, palette,
                                        OverlayStyle(alpha=0.4, legend=LegendStyle(corner="top_left")))
    x0, y0, x1, y1 = drawn.box
    outside = np.ones(labels.shape, bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(with_legend[outside], plain[outside])
    assert set(drawn.swatches) == {1, 2}
    with pytest.raises(ValueError, match="alpha"):
        OverlayStyle(alpha=1.5)
