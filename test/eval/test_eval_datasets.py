"""Readers on tiny synthetic datasets written in each real on-disk layout: ids and their order,
class indices, ignore pixels, class-name lists."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from _eval_fakes import save_jpg, save_png
from rns_ros.eval.datasets import DATASETS, IGNORE_INDEX, build_dataset, dataset_class

RAW = np.array([[0, 1, 2, 3], [58, 59, 60, 255]], dtype=np.uint8)  # a few values of every range


def _image(shape=(2, 4)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=shape + (3,), dtype=np.uint8)


def expected(raw: np.ndarray, mapping) -> np.ndarray:
    """An independent per-pixel mapping: raw value -> index or IGNORE_INDEX."""
    out = np.full(raw.shape, IGNORE_INDEX, dtype=np.int64)
    for (y, x), v in np.ndenumerate(raw):
        m = mapping(int(v))
        out[y, x] = IGNORE_INDEX if m is None else m
    return out


def test_class_name_lists_have_the_protocol_sizes_and_unique_names():
    sizes = {"voc": 21, "context60": 60, "context59": 59, "coco-object": 81, "coco-stuff": 171,
             "cityscapes": 19, "ade20k": 150, "camvid": 11, "foodseg103": 104, "acdc": 19,
             "cub": 0}  # CUB reads its 200 species names from the dataset's classes.txt
    assert {n: len(c.class_names) for n, c in DATASETS.items()} == sizes
    for cls in DATASETS.values():
        assert len(set(cls.class_names)) == len(cls.class_names), cls.name
        assert all(n == n.strip() and n for n in cls.class_names)
    assert DATASETS["voc"].class_names[0] == "background" and DATASETS["voc"].has_background
    assert DATASETS["context60"].class_names[1:] == DATASETS["context59"].class_names
    assert DATASETS["coco-object"].class_names[1] == "person"
    assert DATASETS["ade20k"].class_names[7] == "bed"
    assert dataset_class("city") is DATASETS["cityscapes"] and dataset_class("C59") is DATASETS["context59"]


def test_voc_reads_palette_indices_in_split_file_order_and_ignores_255(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    raw = np.array([[0, 1, 20, 255], [21, 15, 0, 7]], dtype=np.uint8)  # 21 is not a class
    for name in ("2007_000032", "2007_000001"):
        save_jpg(base / "JPEGImages" / f"{name}.jpg", _image())
        save_png(base / "SegmentationClass" / f"{name}.png", raw, palette=True)
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n2007_000001\n")
    ds = build_dataset("voc", tmp_path)  # a parent folder works too
    assert ds.split == "val" and ds.ids == ["2007_000032", "2007_000001"]
    with Image.open(base / "SegmentationClass" / "2007_000001.png") as im:
        assert im.mode == "P"
    s = ds.sample("2007_000001")
    assert s.image.shape == (2, 4, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.labels, expected(raw, lambda v: v if v <= 20 else None))
    assert ds.classes_present("2007_000001") == [0, 1, 7, 15, 20]


@pytest.mark.parametrize("name,mapping", [
    ("context60", lambda v: v if v <= 59 else None),
    ("context59", lambda v: v - 1 if 1 <= v <= 59 else None),
])
def test_pascal_context_60_keeps_background_and_59_ignores_it(tmp_path, name, mapping):
    base = tmp_path / "VOC2010"
    save_jpg(base / "JPEGImages" / "2008_000002.jpg", _image())
    save_png(base / "SegmentationClassContext" / "2008_000002.png", RAW)
    (base / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (base / "ImageSets" / "SegmentationContext" / "train.txt").write_text("2008_000002\n")
    ds = build_dataset(name, base, "train")
    np.testing.assert_array_equal(ds.load_labels("2008_000002"), expected(RAW, mapping))


def _coco(tmp_path, suffixes):
    base = tmp_path / "coco_stuff164k"
    for image_id in ("000000000285", "000000000139"):
        save_jpg(base / "images" / "val2017" / f"{image_id}.jpg", _image())
        for suffix, raw in suffixes.items():
            save_png(base / "annotations" / "val2017" / f"{image_id}{suffix}", raw)
    return base


def test_coco_stuff_train_ids_and_sorted_ids(tmp_path):
    raw = np.array([[0, 79, 80, 170], [171, 255, 3, 0]], dtype=np.uint8)
    base = _coco(tmp_path, {"_labelTrainIds.png": raw})
    ds = build_dataset("coco-stuff", base)
    assert ds.ids == ["000000000139", "000000000285"]
    np.testing.assert_array_equal(ds.load_labels("000000000139"),
                                  expected(raw, lambda v: v if v <= 170 else None))


def test_coco_object_prefers_converted_maps_and_otherwise_derives_them(tmp_path):
    stuff = np.array([[0, 79, 80, 170], [171, 255, 3, 100]], dtype=np.uint8)
    derived = expected(stuff, lambda v: v + 1 if v < 80 else (0 if v <= 170 else None))
    base = _coco(tmp_path, {"_labelTrainIds.png": stuff})
    ds = build_dataset("coco-object", tmp_path)
    np.testing.assert_array_equal(ds.load_labels("000000000139"), derived)
    converted = np.array([[0, 80, 81, 1], [255, 0, 0, 5]], dtype=np.uint8)
    save_png(base / "annotations" / "val2017" / "000000000139_instanceTrainIds.png", converted)
    np.testing.assert_array_equal(ds.load_labels("000000000139"),
                                  expected(converted, lambda v: v if v <= 80 else None))


def test_cityscapes_train_ids_label_id_fallback_and_instances(tmp_path):
    gt = tmp_path / "cityscapes" / "gtFine" / "val"
    img = tmp_path / "cityscapes" / "leftImg8bit" / "val"
    for city, name in (("munster", "munster_000001_000019"), ("frankfurt", "frankfurt_000000_000294")):
        Image.fromarray(_image()).save((img / city).mkdir(parents=True, exist_ok=True) or
                                       img / city / f"{name}_leftImg8bit.png")
    train_ids = np.array([[0, 18, 19, 255], [7, 7, 13, 13]], dtype=np.uint8)
    save_png(gt / "frankfurt" / "frankfurt_000000_000294_gtFine_labelTrainIds.png", train_ids)
    label_ids = np.array([[7, 8, 0, 33], [26, 26, 6, 24]], dtype=np.uint8)  # road, sidewalk, -, bicycle
    save_png(gt / "munster" / "munster_000001_000019_gtFine_labelIds.png", label_ids)
    instance_ids = np.array([[7, 8, 0, 33001], [26000, 26001, 6, 24000]], dtype=np.uint16)  # 16-bit PNG
    Image.fromarray(instance_ids).save(gt / "munster" / "munster_000001_000019_gtFine_instanceIds.png")
    ds = build_dataset("cityscapes", tmp_path)
    assert ds.ids == ["frankfurt/frankfurt_000000_000294", "munster/munster_000001_000019"]
    np.testing.assert_array_equal(ds.load_labels(ds.ids[0]),
                                  expected(train_ids, lambda v: v if v <= 18 else None))
    official = {7: 0, 8: 1, 33: 18, 26: 13, 24: 11}  # the official labelId -> trainId table
    np.testing.assert_array_equal(ds.load_labels(ds.ids[1]), expected(label_ids, official.get))
    s = ds.sample(ds.ids[1])
    assert s.instances is not None
    assert s.instances[1, 0] != s.instances[1, 1]  # two car instances stay apart
    assert s.instances[0, 2] == 0 and s.instances[1, 2] == 0  # ignored pixels are no segment
    assert ds.sample(ds.ids[0]).instances is None


def test_ade20k_reduces_zero_label(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    raw = np.array([[0, 1, 150, 151], [255, 2, 0, 149]], dtype=np.uint8)
    save_jpg(base / "images" / "validation" / "ADE_val_00000001.jpg", _image())
    save_png(base / "annotations" / "validation" / "ADE_val_00000001.png", raw)
    ds = build_dataset("ade20k", tmp_path)
    np.testing.assert_array_equal(ds.load_labels("ADE_val_00000001"),
                                  expected(raw, lambda v: v - 1 if 1 <= v <= 150 else None))


def test_camvid_ignores_11_and_scores_test(tmp_path):
    raw = np.array([[0, 10, 11, 3], [255, 5, 5, 12]], dtype=np.uint8)
    for split in ("train", "test"):
        save_jpg(tmp_path / split / "images" / "0001TP_006690.jpg", _image())
        save_png(tmp_path / split / "labels" / "0001TP_006690.png", raw)
    ds = build_dataset("camvid", tmp_path)
    assert ds.split == "test" and ds.ids == ["0001TP_006690"]
    np.testing.assert_array_equal(ds.load_labels("0001TP_006690"),
                                  expected(raw, lambda v: v if v <= 10 else None))


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("pascal-part", tmp_path)
    with pytest.raises(ValueError, match="splits"):
        build_dataset("voc", tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        build_dataset("voc", tmp_path)
    (tmp_path / "test" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        build_dataset("camvid", tmp_path).ids
    save_jpg(tmp_path / "test" / "images" / "a.jpg", _image())
    Image.fromarray(_image()).save((tmp_path / "test" / "labels").mkdir() or tmp_path / "test" / "labels" / "a.png")
    with pytest.raises(ValueError, match="mode 'RGB'"):
        build_dataset("camvid", tmp_path).load_labels("a")


def test_foodseg103_keeps_background_and_reads_the_split_list(tmp_path):
    base = tmp_path / "FoodSeg103"
    raw = np.array([[0, 1, 103, 104], [255, 50, 0, 2]], dtype=np.uint8)  # 104 is not a class
    for name in ("00000002", "00000001"):
        save_jpg(base / "Images" / "img_dir" / "test" / f"{name}.jpg", _image())
        save_png(base / "Images" / "ann_dir" / "test" / f"{name}.png", raw)
    (base / "ImageSets").mkdir(parents=True)
    (base / "ImageSets" / "test.txt").write_text("00000002.jpg\n00000001.jpg\n")
    ds = build_dataset("foodseg103", tmp_path)
    assert ds.split == "test" and ds.ids == ["00000002", "00000001"] and ds.has_background
    np.testing.assert_array_equal(ds.load_labels("00000001"), expected(raw, lambda v: v if v <= 103 else None))
    assert ds.class_names[0] == "background" and ds.class_names[103] == "other ingredients"
    assert dataset_class("food") is DATASETS["foodseg103"]


def _write_cub(root, species=("001.Black_footed_Albatross", "002.Laysan_Albatross")):
    """CUB_200_2011 with two species, three images, and the separate segmentations/ folder."""
    base = root / "CUB_200_2011"
    images = [(1, f"{species[1]}/Laysan_Albatross_0002_1.jpg", 0), (2, f"{species[0]}/Black_Footed_Albatross_0001_2.jpg", 1),
              (3, f"{species[0]}/Black_Footed_Albatross_0003_3.jpg", 0)]
    mask = np.array([[0, 127, 128, 255], [255, 200, 10, 0]], dtype=np.uint8)  # soft: annotators' share
    for _, rel, _ in images:
        save_jpg(base / "images" / rel, _image())
        save_png(root / "segmentations" / rel.replace(".jpg", ".png"), mask)
    (base / "classes.txt").write_text("".join(f"{i + 1} {s}\n" for i, s in enumerate(species)))
    (base / "images.txt").write_text("".join(f"{i} {rel}\n" for i, rel, _ in images))
    (base / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, t in images))
    return mask


def test_cub_labels_each_bird_with_its_species_and_the_rest_background(tmp_path):
    mask = _write_cub(tmp_path)
    test, train = build_dataset("cub", tmp_path), build_dataset("cub", tmp_path, "train")
    assert test.split == "test" and train.split == "train"
    assert test.ids == ["002.Laysan_Albatross/Laysan_Albatross_0002_1",
                        "001.Black_footed_Albatross/Black_Footed_Albatross_0003_3"]  # images.txt order
    assert train.ids == ["001.Black_footed_Albatross/Black_Footed_Albatross_0001_2"]
    assert test.class_names == ("background", "Black footed Albatross", "Laysan Albatross")
    np.testing.assert_array_equal(test.load_labels(test.ids[0]), np.where(mask >= 128, 2, 0))
    np.testing.assert_array_equal(test.load_labels(test.ids[1]), np.where(mask >= 128, 1, 0))
    assert test.classes_present(test.ids[0]) == [0, 2]


def test_acdc_reads_every_condition_with_cityscapes_train_ids(tmp_path):
    base = tmp_path / "acdc"
    raw = np.array([[0, 18, 19, 255], [7, 7, 13, 2]], dtype=np.uint8)
    for condition, seq, name in (("night", "GOPR0351", "GOPR0351_frame_000159"),
                                 ("fog", "GOPR0475", "GOPR0475_frame_000247"),
                                 ("fog", "GOPR0475", "GOPR0475_frame_000041")):
        save_png(base / "rgb_anon" / condition / "val" / seq / f"{name}_rgb_anon.png", _image()[..., 0])
        save_png(base / "gt" / condition / "val" / seq / f"{name}_gt_labelTrainIds.png", raw)
    ds = build_dataset("acdc", tmp_path)
    assert ds.ids == ["fog/GOPR0475/GOPR0475_frame_000041", "fog/GOPR0475/GOPR0475_frame_000247",
                      "night/GOPR0351/GOPR0351_frame_000159"]
    s = ds.sample(ds.ids[2])
    assert s.image.shape == (2, 4, 3)  # a grey PNG is read as RGB
    np.testing.assert_array_equal(s.labels, expected(raw, lambda v: v if v < 19 else None))
    assert ds.class_names == DATASETS["cityscapes"].class_names


def test_cross_dataset_support_maps_classes_by_name(tmp_path):
    from rns_ros.eval.datasets.cross import RemappedSupport

    base = tmp_path / "cityscapes"
    raw = np.array([[0, 11, 13, 255]], dtype=np.uint8)  # road, person, car, ignored
    save_png(base / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png", _image((1, 4))[..., 0])
    save_png(base / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelTrainIds.png", raw)
    city = build_dataset("cityscapes", tmp_path, "train")
    view = RemappedSupport(city, ("background", "car", "Road"), "toy")
    assert view.name == "cityscapes-as-toy" and view.shared_classes == ("road", "car")
    [image_id] = view.ids
    np.testing.assert_array_equal(view.load_labels(image_id), [[2, IGNORE_INDEX, 1, IGNORE_INDEX]])
    assert view.classes_present(image_id) == [1, 2] and view.load_image(image_id).shape == (1, 4, 3)
    with pytest.raises(ValueError, match="shares no class name"):
        RemappedSupport(city, ("pizza",), "food")
