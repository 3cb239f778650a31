"""What every dataset reader provides: ordered image ids, RGB images and label maps of dataset
class indices (0..C-1) with IGNORE_INDEX for pixels that count for nothing."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

IGNORE_INDEX = 255


@dataclass(frozen=True)
class Sample:
    """One annotated image.

    `image`: (H, W, 3) uint8 RGB. `labels`: (H, W) uint8 dataset class indices in [0, C), or
    IGNORE_INDEX (255). `instances`: optional (H, W) int64 segment ids (0 = none) of the
    dataset's own instance annotation, used for panoptic quality; None where there is none.
    """

    image_id: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray | None = None


def label_lut(mapping: dict[int, int]) -> np.ndarray:
    """(256,) uint8 lookup table: raw label value -> class index; unmapped values -> IGNORE_INDEX."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for raw, index in mapping.items():
        lut[raw] = index
    return lut


def identity_lut(num_classes: int) -> np.ndarray:
    """Values 0..C-1 are the classes; anything else is ignored."""
    return label_lut({i: i for i in range(num_classes)})


def reduce_zero_lut(num_classes: int) -> np.ndarray:
    """mmseg's `reduce_zero_label`: 0 is ignored, 1..C become 0..C-1."""
    return label_lut({i + 1: i for i in range(num_classes)})


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, whatever the file's mode."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_index_png(path: Path) -> np.ndarray:
    """(H, W) raw label values of a single-channel or palette PNG (palette indices, not colours)."""
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"label map {path} has mode {im.mode!r}; expected a single-channel or "
                             "palette PNG of class ids (a colour-coded label image must be converted first)")
        arr = np.asarray(im)
    if arr.max(initial=0) > 255:
        raise ValueError(f"label map {path} has values above 255; expected 8-bit class ids")
    return arr.astype(np.uint8)


def first_existing(root: Path, candidates: Sequence[str], marker: str) -> Path:
    """The first of root/candidate that contains `marker`, so users may point at either the dataset
    folder or one of its parents. Raises FileNotFoundError naming what was looked for."""
    for rel in candidates:
        base = root / rel if rel else root
        if (base / marker).exists():
            return base
    tried = ", ".join(str(root / c) if c else str(root) for c in candidates)
    raise FileNotFoundError(f"no '{marker}' found under any of: {tried}; "
                            "pass --root pointing at the dataset folder")


class SegmentationDataset:
    """Base reader. Subclasses set the class attributes and implement `_list_ids`, `image_path`,
    `label_path` (and `_raw_to_index` when a lookup table is not enough).

    `split` names the dataset's own split ("train", "val", ...); `ids` keep the order of the
    split file, or sorted relative paths where the layout has none (as mmsegmentation does, so
    that support sampling draws from the same ordered list as the reference code).
    """

    name: str = ""
    class_names: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "val")
    eval_split: str = "val"  # the split scored in the paper's protocol
    support_split: str = "train"  # the split the support is sampled from
    has_background: bool = False  # a "background" class that is scored like any other
    image_namespace: str = ""  # datasets sharing images (Context-59/60) share cached features
    lut: np.ndarray | None = None

    def __init__(self, root: str | Path, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.name} has splits {list(self.splits)}, not {split!r}")
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"dataset root {self.root} does not exist")
        self.split = split
        self._ids: list[str] | None = None

    # -- to implement -----------------------------------------------------------------------
    def _list_ids(self) -> list[str]:
        raise NotImplementedError

    def image_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def label_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def _raw_to_index(self, raw: np.ndarray, image_id: str) -> np.ndarray:
        assert self.lut is not None, f"{type(self).__name__} needs a lut or its own _raw_to_index"
        return self.lut[raw]

    def load_instances(self, image_id: str) -> np.ndarray | None:
        return None

    # -- shared -------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            ids = self._list_ids()
            if not ids:
                raise FileNotFoundError(f"{self.name}: no images found for split {self.split!r} "
                                        f"under {self.root}")
            self._ids = ids
        return self._ids

    def __len__(self) -> int:
        return len(self.ids)

    def load_image(self, image_id: str) -> np.ndarray:
        return read_rgb(self.image_path(image_id))

    def load_labels(self, image_id: str) -> np.ndarray:
        """(H, W) uint8 class indices, IGNORE_INDEX where ignored."""
        return self._raw_to_index(read_index_png(self.label_path(image_id)), image_id)

    def sample(self, image_id: str) -> Sample:
        image = self.load_image(image_id)
        labels = self.load_labels(image_id)
        if labels.shape != image.shape[:2]:
            raise ValueError(f"{self.name} {image_id}: label map {labels.shape} and image "
                             f"{image.shape[:2]} differ in size")
        return Sample(image_id, image, labels, self.load_instances(image_id))

    def __iter__(self) -> Iterator[Sample]:
        for image_id in self.ids:
            yield self.sample(image_id)

    def classes_present(self, image_id: str) -> list[int]:
        """Class indices with at least one pixel in `image_id`'s label map (ignore excluded)."""
        present = np.unique(self.load_labels(image_id))
        return [int(c) for c in present if c != IGNORE_INDEX]


def sorted_relative(folder: Path, suffix: str) -> list[str]:
    """Ids = paths relative to `folder` without `suffix`, sorted (recursive)."""
    if not folder.is_dir():
        return []
    found = [p.relative_to(folder).as_posix() for p in folder.rglob("*" + suffix) if p.is_file()]
    return sorted(f[: -len(suffix)] for f in found)


def split_file_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
