"""Readers for the standard on-disk layouts of the paper's datasets (mmsegmentation conventions)
and the 11-class SegNet CamVid layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rns_ros.eval.datasets import classnames as names
from rns_ros.eval.datasets.base import (
    IGNORE_INDEX, SegmentationDataset, first_existing, identity_lut, label_lut, read_index_png,
    reduce_zero_lut, sorted_relative, split_file_ids,
)


class _VocLayout(SegmentationDataset):
    """The VOCdevkit layout shared by VOC and Context: <year_dir>/{JPEGImages/<id>.jpg,
    <labels_dir>/<id>.png, ImageSets/<sets_dir>/<split>.txt}, the root being the devkit, the year
    folder or its parent; `marker` is the sub-folder that identifies the right one."""

    year_dir: str
    labels_dir: str
    sets_dir: str
    marker: str

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", self.year_dir, f"VOCdevkit/{self.year_dir}"], self.marker)

    def _list_ids(self):
        return split_file_ids(self.base / "ImageSets" / self.sets_dir / f"{self.split}.txt")

    def image_path(self, image_id):
        return self.base / "JPEGImages" / f"{image_id}.jpg"

    def label_path(self, image_id):
        return self.base / self.labels_dir / f"{image_id}.png"


class PascalVOC(_VocLayout):
    """PASCAL VOC 2012: VOC2012/{JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette indices),
    ImageSets/Segmentation/<split>.txt}. 21 classes with background (index 0); 255 (object
    borders) is ignored."""

    name = "voc"
    class_names = names.VOC21
    has_background = True
    image_namespace = "voc2012"
    lut = identity_lut(21)
    year_dir, labels_dir, sets_dir, marker = "VOC2012", "SegmentationClass", "Segmentation", "JPEGImages"


class PascalContext60(_VocLayout):
    """PASCAL Context (mmseg layout): VOC2010/{JPEGImages, SegmentationClassContext/<id>.png with
    0 = background and 1..59 the classes, ImageSets/SegmentationContext/<split>.txt}.
    60 classes, background included."""

    name = "context60"
    class_names = names.CONTEXT60
    has_background = True
    image_namespace = "pascal-context"
    lut = identity_lut(60)
    year_dir, labels_dir, sets_dir = "VOC2010", "SegmentationClassContext", "SegmentationContext"
    marker = "SegmentationClassContext"


class PascalContext59(PascalContext60):
    """Same files as Context-60; background (0) is ignored and 1..59 become 0..58."""

    name = "context59"
    class_names = names.CONTEXT59
    has_background = False
    lut = reduce_zero_lut(59)


class CocoStuff(SegmentationDataset):
    """COCO-Stuff 164k (mmseg layout): coco_stuff164k/{images/<split>2017/<id>.jpg,
    annotations/<split>2017/<id>_labelTrainIds.png} with train ids 0..170, 255 ignored."""

    name = "coco-stuff"
    class_names = names.COCO_STUFF171
    image_namespace = "coco2017"
    lut = identity_lut(171)
    label_suffix = "_labelTrainIds.png"

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "coco_stuff164k"], "images")

    @property
    def _folder(self) -> str:
        return f"{self.split}2017"

    def _list_ids(self):
        return sorted_relative(self.base / "images" / self._folder, ".jpg")

    def image_path(self, image_id):
        return self.base / "images" / self._folder / f"{image_id}.jpg"

    def label_path(self, image_id):
        return self.base / "annotations" / self._folder / f"{image_id}{self.label_suffix}"


# COCO-Stuff train id t -> COCO-Object index: things (t < 80) -> t + 1, stuff -> 0 (background).
_STUFF_TO_OBJECT = label_lut({**{t: t + 1 for t in range(80)}, **{t: 0 for t in range(80, 171)}})


class CocoObject(CocoStuff):
    """COCO-Object: background + the 80 COCO thing classes, on the COCO-Stuff 164k images.
    Reads `<id>_instanceTrainIds.png` (0 = background, 1..80, 255 ignored; the GroupViT/TCL
    conversion) when present, otherwise derives it from `<id>_labelTrainIds.png` (stuff classes
    become background)."""

    name = "coco-object"
    class_names = names.COCO_OBJECT81
    has_background = True
    lut = identity_lut(81)
    label_suffix = "_instanceTrainIds.png"

    def label_path(self, image_id):
        converted = super().label_path(image_id)
        if converted.exists():
            return converted
        return self.base / "annotations" / self._folder / f"{image_id}{CocoStuff.label_suffix}"

    def _raw_to_index(self, raw, image_id):
        if self.label_path(image_id).name.endswith(CocoStuff.label_suffix):
            return _STUFF_TO_OBJECT[raw]
        return self.lut[raw]


_CITYSCAPES_IDS = label_lut(names.CITYSCAPES_ID_TO_TRAIN_ID)


class Cityscapes(SegmentationDataset):
    """Cityscapes: {leftImg8bit/<split>/<city>/<name>_leftImg8bit.png,
    gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png} (19 train ids, 255 ignored). Without the
    converted trainIds files, `_gtFine_labelIds.png` is mapped with the official table.
    Instances (for panoptic quality) come from `_gtFine_instanceIds.png` when present."""

    name = "cityscapes"
    class_names = names.CITYSCAPES19
    splits = ("train", "val", "test")
    image_namespace = "cityscapes"
    lut = identity_lut(19)

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "cityscapes"], "leftImg8bit")

    def _list_ids(self):
        return sorted_relative(self.base / "leftImg8bit" / self.split, "_leftImg8bit.png")

    def image_path(self, image_id):
        return self.base / "leftImg8bit" / self.split / f"{image_id}_leftImg8bit.png"

    def _gt(self, image_id: str, kind: str) -> Path:
        return self.base / "gtFine" / self.split / f"{image_id}_gtFine_{kind}.png"

    def label_path(self, image_id):
        train_ids = self._gt(image_id, "labelTrainIds")
        return train_ids if train_ids.exists() else self._gt(image_id, "labelIds")

    def _raw_to_index(self, raw, image_id):
        if self.label_path(image_id).name.endswith("_labelIds.png"):
            return _CITYSCAPES_IDS[raw]
        return self.lut[raw]

    def load_instances(self, image_id):
        path = self._gt(image_id, "instanceIds")
        if not path.exists():
            return None
        from PIL import Image
        with Image.open(path) as im:
            ids = np.asarray(im).astype(np.int64)
        # Pixels of crowd regions / ignored classes are not segments.
        labels = self.load_labels(image_id)
        return np.where(labels == IGNORE_INDEX, 0, ids + 1)


class ADE20K(SegmentationDataset):
    """ADEChallengeData2016: {images/<training|validation>/<id>.jpg, annotations/.../<id>.png};
    0 ("other") is ignored and 1..150 become 0..149."""

    name = "ade20k"
    class_names = names.ADE150
    image_namespace = "ade20k"
    lut = reduce_zero_lut(150)
    _folders = {"train": "training", "val": "validation"}

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "ADEChallengeData2016"], "annotations")

    def _list_ids(self):
        return sorted_relative(self.base / "images" / self._folders[self.split], ".jpg")

    def image_path(self, image_id):
        return self.base / "images" / self._folders[self.split] / f"{image_id}.jpg"

    def label_path(self, image_id):
        return self.base / "annotations" / self._folders[self.split] / f"{image_id}.png"


class CamVid(SegmentationDataset):
    """CamVid, 11-class SegNet split: {train,val,test}/{images/<id>.jpg, labels/<id>.png};
    11 (unlabelled) is ignored. Scored on test (support from train), as is usual for CamVid."""

    name = "camvid"
    class_names = names.CAMVID11
    splits = ("train", "val", "test")
    eval_split = "test"
    image_namespace = "camvid"
    lut = identity_lut(11)

    def __init__(self, root, split):
        super().__init__(root, split)
        self.base = first_existing(self.root, ["", "camvid"], split)

    def _list_ids(self):
        return sorted_relative(self.base / self.split / "images", ".jpg")

    def image_path(self, image_id):
        return self.base / self.split / "images" / f"{image_id}.jpg"

    def label_path(self, image_id):
        return self.base / self.split / "labels" / f"{image_id}.png"


READERS: tuple[type[SegmentationDataset], ...] = (
    PascalVOC, PascalContext60, PascalContext59, CocoObject, CocoStuff, Cityscapes, ADE20K, CamVid,
)

__all__ = [cls.__name__ for cls in READERS] + ["READERS", "read_index_png"]
