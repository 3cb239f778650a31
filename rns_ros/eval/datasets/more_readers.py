"""Readers for the paper's further datasets: FoodSeg103, CUB-200-2011 (birds) and ACDC."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rns_ros.eval.datasets import classnames as names
from rns_ros.eval.datasets.base import (
    IGNORE_INDEX, SegmentationDataset, first_existing, identity_lut, sorted_relative, split_file_ids,
)


class FoodSeg103(SegmentationDataset):
    """FoodSeg103: FoodSeg103/{ImageSets/<split>.txt (file names), Images/img_dir/<split>/<id>.jpg,
    Images/ann_dir/<split>/<id>.png} with 0 = background and 1..103 the ingredients (104 classes,
    background scored like any other, as in VOC). Scored on test, support from train."""

    name = "foodseg103"
    class_names = names.FOODSEG104
    splits = ("train", "test")
    eval_split = "test"
    has_background = True
    image_namespace = "foodseg103"
    lut = identity_lut(104)

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "FoodSeg103"], "Images")

    def _list_ids(self):
        listing = self.base / "ImageSets" / f"{self.split}.txt"
        if listing.is_file():
            return [Path(n).stem for n in split_file_ids(listing)]
        return sorted_relative(self.base / "Images" / "img_dir" / self.split, ".jpg")

    def image_path(self, image_id):
        return self.base / "Images" / "img_dir" / self.split / f"{image_id}.jpg"

    def label_path(self, image_id):
        return self.base / "Images" / "ann_dir" / self.split / f"{image_id}.png"


class CUB200(SegmentationDataset):
    """CUB-200-2011 birds: CUB_200_2011/{images/<class dir>/<name>.jpg, images.txt, classes.txt,
    train_test_split.txt} and the separate segmentations/<class dir>/<name>.png (beside or inside
    CUB_200_2011). Classes: background + the 200 species (names from classes.txt); a pixel whose
    mask value is >= 128 (at least half the annotators) is the image's species, the rest
    background. Scored on the official test split, support from train."""

    name = "cub"
    splits = ("train", "test")
    eval_split = "test"
    has_background = True
    image_namespace = "cub200"

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "CUB_200_2011"], "classes.txt")
        self.masks = first_existing(self.base, ["segmentations", "../segmentations"], "")
        class_dirs = [line.split(maxsplit=1)[1] for line in split_file_ids(self.base / "classes.txt")]
        # "001.Black_footed_Albatross" -> "Black footed Albatross"
        self.class_names = ("background",) + tuple(d.split(".", 1)[1].replace("_", " ") for d in class_dirs)
        self._class_of_dir = {d: i + 1 for i, d in enumerate(class_dirs)}

    def _list_ids(self):
        paths = dict(line.split(maxsplit=1) for line in split_file_ids(self.base / "images.txt"))
        is_train = dict(line.split() for line in split_file_ids(self.base / "train_test_split.txt"))
        want = "1" if self.split == "train" else "0"
        return [paths[i][: -len(".jpg")] for i in paths if is_train.get(i) == want]

    def image_path(self, image_id):
        return self.base / "images" / f"{image_id}.jpg"

    def label_path(self, image_id):
        return self.masks / f"{image_id}.png"

    def _raw_to_index(self, raw, image_id):
        species = self._class_of_dir[image_id.split("/", 1)[0]]
        return np.where(raw >= 128, species, 0).astype(np.uint8)

    def load_labels(self, image_id):
        with Image.open(self.label_path(image_id)) as im:  # soft masks, sometimes saved as RGB(A)
            raw = np.asarray(im.convert("L"))
        return self._raw_to_index(raw, image_id)


class ACDC(SegmentationDataset):
    """ACDC (adverse conditions: fog, night, rain, snow), Cityscapes' 19 classes:
    {rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png,
    gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png} (255 ignored). Ids are
    '<condition>/<sequence>/<name>', sorted. Scored on val; the paper's cross-dataset run takes
    the support from Cityscapes (`--support-dataset cityscapes`)."""

    name = "acdc"
    class_names = names.CITYSCAPES19
    splits = ("train", "val", "test")
    image_namespace = "acdc"
    lut = identity_lut(19)
    conditions = ("fog", "night", "rain", "snow")

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "acdc", "ACDC"], "rgb_anon")

    def _list_ids(self):
        ids = []
        for condition in self.conditions:
            folder = self.base / "rgb_anon" / condition / self.split
            ids += [f"{condition}/{i}" for i in sorted_relative(folder, "_rgb_anon.png")]
        return ids

    def _parts(self, image_id: str) -> tuple[str, str]:
        condition, rest = image_id.split("/", 1)
        return condition, rest

    def image_path(self, image_id):
        condition, rest = self._parts(image_id)
        return self.base / "rgb_anon" / condition / self.split / f"{rest}_rgb_anon.png"

    def label_path(self, image_id):
        condition, rest = self._parts(image_id)
        return self.base / "gt" / condition / self.split / f"{rest}_gt_labelTrainIds.png"


__all__ = ["ACDC", "CUB200", "FoodSeg103", "IGNORE_INDEX"]
