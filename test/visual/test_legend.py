"""The overlay legend: which classes it lists, where it goes, how big it may get."""
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFont

from rns_ros.visual import fonts, legend
from rns_ros.visual.legend import LegendStyle, class_areas, draw_legend, legend_entries
from rns_ros.visual.palette import Palette, parse_palette

GREY = 100  # background that no palette colour below equals


def exact_colour_pixels(image: np.ndarray, rgb) -> int:
    return int((image == np.array(rgb, np.uint8)).all(axis=2).sum())


def scene(h=240, w=320):
    """Class 1 fills the frame, 2 a block in the lower right, 3 a small block in the lower left."""
    labels = np.ones((h, w), np.int32)
    labels[h // 2:, w // 2:] = 2
    labels[h - 30:h - 10, 10:40] = 3
    return labels


def test_entries_are_the_present_classes_largest_first_with_their_share():
    labels = scene()
    areas = class_areas(labels)
    names = {i: f"n{i}" for i in range(1, 7)}
    entries = legend_entries(areas, names)
    assert [e.class_id for e in entries] == [1, 2, 3]
    for e in entries:
        assert e.name == f"n{e.class_id}" and e.share == pytest.approx((labels == e.class_id).mean())
    labels[0, 0] = 0
    labels[0, 1] = 9  # an id the class map does not know (yet)
    entries = legend_entries(class_areas(labels), names)
    assert 0 not in [e.class_id for e in entries] and entries[-1].name == "class 9"


def test_large_label_images_are_counted_on_a_grid_that_never_invents_a_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 5, (1080, 1920)).astype(np.int32)
    areas = class_areas(labels)
    exact = np.bincount(labels.ravel())
    assert set(np.flatnonzero(areas)) <= set(np.flatnonzero(exact))
    np.testing.assert_allclose(areas / areas.sum(), exact / exact.sum(), atol=0.01)
    small = labels[:480, :640]
    np.testing.assert_array_equal(class_areas(small), np.bincount(small.ravel()))  # exact below the limit


@pytest.mark.parametrize("palette", ["golden", "okabe-ito", ["#ff0000", "#00ff00", "#0000ff", "#ffff00"]])
def test_swatches_only_for_present_classes_and_in_the_class_colour(palette):
    palette = parse_palette(palette)
    labels = scene()
    image = np.full((*labels.shape, 3), GREY, np.uint8)
    drawn = draw_legend(image, labels, {i: f"class number {i}" for i in range(1, 5)}, palette)
    assert set(drawn.swatches) == {1, 2, 3} and drawn.hidden == 0
    for cid in (1, 2, 3):
        x0, y0, x1, y1 = drawn.swatches[cid]
        assert (image[y0:y1, x0:x1] == palette.color(cid)).all()  # swatch = the class colour exactly
        assert exact_colour_pixels(image, palette.color(cid)) >= (x1 - x0) * (y1 - y0)
    assert exact_colour_pixels(image, palette.color(4)) == 0  # class 4 is known but absent: no swatch
    x0, y0, x1, y1 = drawn.box
    outside = np.ones(labels.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert (image[outside] == GREY).all()  # nothing drawn outside the legend box
    assert (image[y0:y1, x0:x1] < GREY).mean() > 0.5  # the box darkens what it covers (semi-transparent)
    assert (image[y0:y1, x0:x1].max(axis=2) > 200).any()  # white text


def test_a_200_class_memory_does_not_cover_the_image():
    h, w = 480, 640
    labels = (np.arange(w)[None, :].repeat(h, 0) * 200 // w + 1).astype(np.int32)  # 200 stripes
    image = np.full((h, w, 3), GREY, np.uint8)
    style = LegendStyle()
    drawn = draw_legend(image, labels, {i: f"a rather long class name {i}" for i in range(1, 201)}, Palette(), style)
    x0, y0, x1, y1 = drawn.box
    assert x1 - x0 <= style.max_width_share * w and y1 - y0 <= style.max_height_share * h
    assert len(drawn.swatches) == style.max_entries and drawn.hidden == 200 - style.max_entries
    assert (image != GREY).any(axis=2).mean() < style.max_width_share * style.max_height_share
    # fewer rows fit on a short image: still within its share, still "+N more"
    short = np.full((120, w, 3), GREY, np.uint8)
    drawn = draw_legend(short, labels[:120], {}, Palette(), style)
    assert drawn.box[3] - drawn.box[1] <= 60 and len(drawn.swatches) + drawn.hidden == 200 and drawn.hidden > 0


def test_auto_corner_hides_the_least_and_stays_put_between_similar_frames():
    h, w = 240, 320
    labels = np.ones((h, w), np.int32)  # a wall everywhere ...
    labels[:40, :60] = 2  # ... and a cup in the top left
    image = np.full((h, w, 3), GREY, np.uint8)
    drawn = draw_legend(image.copy(), labels, {}, Palette())
    x0, y0, x1, y1 = drawn.box
    assert drawn.corner != "top_left" and (labels[y0:y1, x0:x1] == 1).all()  # covers wall only
    # every wall corner hides the same: the previous corner is kept
    for corner in ("top_right", "bottom_left", "bottom_right"):
        assert draw_legend(image.copy(), labels, {}, Palette(), previous_corner=corner).corner == corner
    labels[-20:, -30:] = 3  # a small plate appears in the bottom right: moving is clearly better now
    moved = draw_legend(image.copy(), labels, {}, Palette(), previous_corner="bottom_right")
    assert moved.corner in ("top_right", "bottom_left")
    fixed = draw_legend(image.copy(), labels, {}, Palette(), LegendStyle(corner="top_left"))
    assert fixed.corner == "top_left" and fixed.box[:2] == (0, 0)


def test_long_names_are_shortened_and_tiny_images_get_no_legend():
    style = LegendStyle(max_name_chars=10)
    image = np.full((240, 320, 3), GREY, np.uint8)
    drawn = draw_legend(image, scene(), {1: "x" * 200, 2: "short", 3: "Ünïcødé 杯子"}, Palette(), style)
    assert drawn is not None and drawn.box[2] - drawn.box[0] <= style.max_width_share * 320
    assert legend._fit_name("abcdefghijklmnop", 13, 1000, 10) == "abcdefghi…"
    assert legend._fit_name("short", 13, 1000, 10) == "short"
    narrow = legend._fit_name("abcdefghijklmnop", 13, 40, 24)
    assert narrow.endswith("…") and legend.legend_font(13).getlength(narrow) <= 40
    tiny = np.full((12, 16, 3), GREY, np.uint8)
    assert draw_legend(tiny, np.ones((12, 16), np.int32), {1: "wall"}, Palette()) is None
    assert (tiny == GREY).all()
    assert draw_legend(image, np.zeros((240, 320), np.int32), {}, Palette()) is None  # nothing labelled


def test_without_freetype_the_bitmap_font_draws_any_name(monkeypatch):
    monkeypatch.setattr(legend, "legend_font", lambda size: ImageFont.load_default_imagefont())
    for cached in (legend._fit_name, legend._text_mask):
        cached.cache_clear()
    try:
        image = np.full((240, 320, 3), GREY, np.uint8)
        drawn = draw_legend(image, scene(), {1: "杯子 mug", 2: "y" * 80, 3: "plate"}, Palette())
        assert set(drawn.swatches) == {1, 2, 3}
        assert legend._fit_name("y" * 80, 13, 60, 24).endswith("...")
    finally:
        for cached in (legend._fit_name, legend._text_mask):
            cached.cache_clear()


@pytest.mark.parametrize("kwargs", [{"corner": "middle"}, {"max_entries": 0}, {"max_width_share": 1.5},
                                    {"background_alpha": -0.1}])
def test_bad_styles_are_refused(kwargs):
    with pytest.raises(ValueError):
        LegendStyle(**kwargs)


def test_names_in_latin_greek_and_cyrillic_are_drawn_not_boxed():
    """Issue 25, item 7: 'ñandú' was drawn as '□and□' (Pillow's built-in font has no 'ñ')."""
    font_path = fonts.font_file()
    assert font_path is not None and Path(font_path).name == "DejaVuSans.ttf"  # system or matplotlib's copy
    font = legend.legend_font(16)
    for name in ("ñandú", "λάμα", "Москва", "Øresund ß"):
        assert legend._drawable(name, font) == name
        drawn = legend._text_mask(name, 16)
        boxes = legend._text_mask(fonts._NOT_A_CHARACTER * len(name), 16)  # the missing-glyph look
        assert drawn.shape != boxes.shape or (drawn != boxes).any()
    assert legend._drawable("杯子", font) == "??"  # no CJK in DejaVu Sans: '?', not a box


def test_without_a_covering_font_missing_characters_are_question_marks_with_a_warning(monkeypatch):
    monkeypatch.setattr(fonts, "FONT_FILES", ())
    monkeypatch.setattr(fonts, "_matplotlib_font", lambda: None)
    monkeypatch.setattr(fonts, "_warned", False)
    for cached in (fonts.font_file, fonts.load_font, legend._fit_name, legend._text_mask):
        cached.cache_clear()
    try:
        font = legend.legend_font(16)
        with pytest.warns(RuntimeWarning, match="fonts-dejavu-core"):
            assert legend._drawable("ñandú", font) == "?and?"
        assert legend._drawable("plain ascii", font) == "plain ascii"
    finally:
        for cached in (fonts.font_file, fonts.load_font, legend._fit_name, legend._text_mask):
            cached.cache_clear()
