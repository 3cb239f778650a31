"""Cross-dataset support (paper Fig. 9: support from Cityscapes, scored on ACDC): another dataset's
support split seen through the scored dataset's class list, matched by class name."""
from __future__ import annotations

from typing import Sequence

from rns_ros.eval.datasets.base import SegmentationDataset, label_lut


class RemappedSupport(SegmentationDataset):
    """`source`'s images with its label maps translated into the class indices of `class_names`
    (names compared case-insensitively); its classes missing there become IGNORE_INDEX."""

    def __init__(self, source: SegmentationDataset, class_names: Sequence[str], target_name: str) -> None:
        # No SegmentationDataset.__init__: the source already checked its root and split.
        wanted = {n.lower(): i for i, n in enumerate(class_names)}
        mapping = {i: wanted[n.lower()] for i, n in enumerate(source.class_names) if n.lower() in wanted}
        shared = [source.class_names[i] for i in mapping]
        if not shared:
            raise ValueError(f"support dataset {source.name!r} shares no class name with {target_name!r}; "
                             "cross-dataset support needs the same class names")
        self.source = source
        self.name = f"{source.name}-as-{target_name}"
        self.class_names = tuple(class_names)
        self.shared_classes = tuple(shared)
        self.root, self.split, self.image_namespace = source.root, source.split, source.image_namespace
        self._ids = None
        self._lut = label_lut(mapping)

    def _list_ids(self):
        return list(self.source.ids)

    def image_path(self, image_id):
        return self.source.image_path(image_id)

    def label_path(self, image_id):
        return self.source.label_path(image_id)

    def load_image(self, image_id):
        return self.source.load_image(image_id)

    def load_labels(self, image_id):
        return self._lut[self.source.load_labels(image_id)]
