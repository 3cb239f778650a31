"""Dataset readers and their registry: `build_dataset("camvid", root, "test")`."""
from __future__ import annotations

from pathlib import Path

from rns_ros.eval.datasets.base import IGNORE_INDEX, Sample, SegmentationDataset
from rns_ros.eval.datasets.more_readers import ACDC, CUB200, FoodSeg103
from rns_ros.eval.datasets.readers import (
    ADE20K, READERS, CamVid, Cityscapes, CocoObject, CocoStuff, PascalContext59, PascalContext60,
    PascalVOC,
)

DATASETS: dict[str, type[SegmentationDataset]] = {cls.name: cls for cls in READERS + (FoodSeg103, CUB200, ACDC)}

# Other spellings people use for the same datasets.
ALIASES: dict[str, str] = {
    "voc21": "voc", "pascal-voc": "voc", "voc2012": "voc",
    "context": "context60", "pascal-context": "context60", "context-60": "context60",
    "context-59": "context59", "c59": "context59",
    "object": "coco-object", "coco_object": "coco-object",
    "stuff": "coco-stuff", "coco_stuff": "coco-stuff", "coco-stuff164k": "coco-stuff",
    "city": "cityscapes", "ade": "ade20k", "ade-150": "ade20k",
    "food": "foodseg103", "foodseg": "foodseg103", "cub200": "cub", "cub-200": "cub", "birds": "cub",
}


def dataset_class(name: str) -> type[SegmentationDataset]:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[key]


def build_dataset(name: str, root: str | Path, split: str | None = None) -> SegmentationDataset:
    """A reader for dataset `name` at `root`; `split` defaults to the split the paper scores."""
    cls = dataset_class(name)
    return cls(root, split or cls.eval_split)


__all__ = [
    "ACDC", "ADE20K", "ALIASES", "CUB200", "CamVid", "FoodSeg103", "Cityscapes", "CocoObject", "CocoStuff", "DATASETS",
    "IGNORE_INDEX", "PascalContext59", "PascalContext60", "PascalVOC", "Sample",
    "SegmentationDataset", "build_dataset", "dataset_class",
]
