"""Palettes: built-ins, the `palette` setting's parser and its refusals."""
import colorsys

import numpy as np
import pytest

from rns_ros.visual.palette import BUILT_IN, OKABE_ITO, Palette, hex_color, parse_palette, to_hex


def test_golden_default_is_stable_distinct_and_follows_golden_ratio_hue_steps():
    palette = parse_palette("golden")
    assert palette == Palette() and palette.color(0) == (0, 0, 0)
    colours = [palette.color(i) for i in range(1, 200)]
    assert len(set(colours)) == 199  # no two of the first 199 ids share a colour
    for cid in (1, 2, 7, 150):
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in palette.color(cid)))
        assert h == pytest.approx((cid * (5 ** 0.5 - 1) / 2) % 1.0, abs=0.005)
        assert s == pytest.approx(0.85, abs=0.01) and v == pytest.approx(0.95 if cid % 2 else 0.75, abs=0.01)


def test_voc_palette_matches_the_published_voc_colours():
    voc = parse_palette("voc")
    # PASCAL VOC 2012 devkit colour map: aeroplane, bicycle, bird, ..., person (15)
    assert [voc.color(i) for i in range(4)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    assert voc.color(15) == (192, 128, 128) and voc.color(20) == (0, 64, 128)


def test_okabe_ito_is_the_colour_blind_safe_list_reused_cyclically():
    palette = parse_palette(" Okabe-Ito ")
    assert palette.name == "okabe-ito"
    assert [to_hex(palette.color(i)) for i in range(1, 9)] == [c.lower() for c in OKABE_ITO]
    assert palette.color(9) == palette.color(1) and palette.color(0) == (0, 0, 0)
    assert (0, 0, 0) not in [palette.color(i) for i in range(1, 9)]  # black stays 'unlabeled'


@pytest.mark.parametrize("value", [["#ff0000", "00FF00", " #0000ff "], "#ff0000, 00FF00,#0000ff",
                                   ("#FF0000", "#00ff00", "#0000FF")])
def test_hex_lists_colour_class_ids_in_rgb_order(value):
    palette = parse_palette(value)
    assert palette.name == "custom" and palette.describe() == "custom (3 colours)"
    assert [palette.color(i) for i in range(1, 5)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 0)]
    table = palette.table([2, 4])
    assert table.shape == (5, 3) and table.dtype == np.uint8
    assert tuple(table[2]) == (0, 255, 0) and tuple(table[4]) == (255, 0, 0)
    assert not table[[0, 1, 3]].any()  # ids not asked for (and 0) stay black


@pytest.mark.parametrize("value, reason", [
    (["#ff0000", "#12345"], "palette entry 2 (class 2) '#12345' is not a hex colour: write '#RRGGBB'"),
    (["#ff0000", "red"], "'red' is not a hex colour"),
    ("#ff0000, #GG0000", "palette entry 2 (class 2) '#GG0000'"),
    ("#f00", "neither a built-in palette (golden, okabe-ito, voc)"),
    ("viridis", "neither a built-in palette"),
    ([], "empty list"),
    ([255, 0, 0], "palette entry 1 (class 1) 255 is not a hex colour"),
    (7, "must be a palette name or a list of hex colours"),
])
def test_bad_palettes_are_refused_with_the_reason(value, reason):
    with pytest.raises(ValueError) as exc:
        parse_palette(value)
    assert reason in str(exc.value)


def test_hex_round_trip_and_built_in_names():
    for rgb in ((0, 0, 0), (255, 136, 0), (1, 2, 3)):
        assert hex_color(to_hex(rgb)) == rgb
    assert set(BUILT_IN) == {"golden", "okabe-ito", "voc"}
