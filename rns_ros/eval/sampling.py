"""The few-shot support sampling protocol (RNS section 7).

With seed s: the candidate pool is the support split, or a random `pool_size` of its images when
larger; the class order is a seeded random permutation; for each class in that order, images
containing it are taken in a seeded shuffled order until the class has B images, counting every
class of every taken image (so frequent classes end up over-represented, on purpose); classes
already at B are skipped.

The random draws are those of the authors' evaluation code, so that a seed picks the same images
as theirs from the same ordered image list: the pool is `numpy.random.seed(s)` +
`numpy.random.choice(n, pool_size, replace=False)` (in draw order); the class order is
`torch.randperm(C)` with a generator seeded with s; each class's candidates are shuffled with
`torch.randperm(n_c)` from a *fresh* generator seeded with s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch


# Support-sampling seeds of the paper's full-support runs (section 7).
PAPER_SEEDS: tuple[int, ...] = (100, 18, 42, 84)
PAPER_SEEDS_LONG: tuple[int, ...] = (100, 18, 42, 84, 92, 256, 512, 1024)  # VOC and Cityscapes
# Partial-support experiments (the authors' README; 5096 is theirs, not a typo of ours).
PAPER_SEEDS_PARTIAL: tuple[int, ...] = PAPER_SEEDS_LONG
PAPER_SEEDS_PARTIAL_LONG: tuple[int, ...] = (100, 18, 42, 84, 92, 128, 256, 512, 1024, 2048, 5096, 8192,
                                             16384, 32768, 65536, 131072)
_LONG_SEED_DATASETS = ("voc", "cityscapes")


def paper_seeds(dataset: str, partial: bool = False) -> tuple[int, ...]:
    """The authors' seeds (their README): full support 8 seeds for VOC and Cityscapes, 4 for the
    others; partial support 16 and 8."""
    if partial:
        return PAPER_SEEDS_PARTIAL_LONG if dataset in _LONG_SEED_DATASETS else PAPER_SEEDS_PARTIAL
    return PAPER_SEEDS_LONG if dataset in _LONG_SEED_DATASETS else PAPER_SEEDS


@dataclass(frozen=True)
class SamplingConfig:
    """How support images are drawn (see the module docstring)."""

    pool_size: int = 5000  # cap on the candidate pool (a seeded random subset when larger)
    # True: each class gets B *distinct* images when the pool has them (the protocol as written).
    # False: the authors' code exactly: an already-taken image can be drawn again for a later
    # class and then counts again for its classes, so a class may end with fewer than B images.
    skip_taken: bool = True

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {self.pool_size}")


@dataclass(frozen=True)
class SupportSample:
    """The support images drawn for one (B, seed).

    `image_ids`: the chosen images in pool order. `class_order`: the seeded class permutation.
    `images_per_class`: class index -> number of chosen images that contain it.
    `short_classes`: classes that got fewer than B images (the pool had too few).
    """

    shots: int
    seed: int
    image_ids: tuple[str, ...]
    class_order: tuple[int, ...]
    images_per_class: dict[int, int] = field(default_factory=dict)
    short_classes: tuple[int, ...] = ()


def class_permutation(num_classes: int, seed: int) -> list[int]:
    """The seeded class order; its first int(f * C) entries are also the classes that lose their
    visual support or their names in the partial-support settings."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_classes, generator=gen).tolist()


def seeded_shuffle(items: Sequence, seed: int) -> list:
    """`items` permuted by torch.randperm(len(items)) from a fresh generator seeded with `seed`."""
    if len(items) == 0:
        return []
    gen = torch.Generator().manual_seed(int(seed))
    return [items[i] for i in torch.randperm(len(items), generator=gen).tolist()]


def candidate_pool(image_ids: Sequence[str], seed: int, pool_size: int) -> list[str]:
    """All of `image_ids`, or `pool_size` of them drawn without replacement (in draw order)."""
    if len(image_ids) <= pool_size:
        return list(image_ids)
    picks = np.random.RandomState(int(seed)).choice(len(image_ids), pool_size, replace=False)
    return [image_ids[int(i)] for i in picks]


def greedy_fill(presence: Sequence[frozenset[int]], class_order: Sequence[int], shots: int,
                shuffle: Callable[[list[int]], list[int]], skip_taken: bool = True
                ) -> tuple[list[int], np.ndarray]:
    """The deterministic core of the protocol, on pool positions.

    `presence[i]`: the classes in pool image i. `shuffle(candidates)` orders the candidates of a
    class. Returns (chosen pool positions ascending, per-class counts as the protocol keeps them).
    """
    num_classes = 1 + max([*class_order, *(c for p in presence for c in p)], default=-1)
    counts = np.zeros(num_classes, dtype=np.int64)
    chosen: set[int] = set()
    for c in class_order:
        if counts[c] >= shots:
            continue
        candidates = shuffle([i for i, classes in enumerate(presence) if c in classes])
        if skip_taken:
            for i in candidates:
                if counts[c] >= shots:
                    break
                if i in chosen:
                    continue
                chosen.add(i)
                for k in presence[i]:
                    counts[k] += 1
        else:
            for i in candidates[: shots - counts[c]]:
                chosen.add(i)
                for k in presence[i]:
                    counts[k] += 1
    return sorted(chosen), counts


def sample_support(pool_ids: Sequence[str], presence: Sequence[Sequence[int]], num_classes: int,
                   shots: int, seed: int, config: SamplingConfig = SamplingConfig()) -> SupportSample:
    """Draw the support of B = `shots` images per class from the support split.

    `pool_ids`: every image id of the support split, in the dataset's order; `presence`: the
    classes present in each of them. `sample_support_lazily` reads presence only for the pool.
    """
    if len(presence) != len(pool_ids):
        raise ValueError(f"presence has {len(presence)} entries for {len(pool_ids)} image ids")
    table = dict(zip(pool_ids, presence))
    return sample_support_lazily(pool_ids, lambda ids: [table[i] for i in ids], num_classes,
                                 shots, seed, config)


def sample_support_lazily(image_ids: Sequence[str],
                          presence_of: Callable[[list[str]], Sequence[Sequence[int]]],
                          num_classes: int, shots: int, seed: int,
                          config: SamplingConfig = SamplingConfig()) -> SupportSample:
    """As `sample_support`, asking `presence_of(ids)` only for the pool's images."""
    if shots < 1:
        raise ValueError(f"shots (B) must be >= 1, got {shots}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    pool = candidate_pool(image_ids, seed, config.pool_size)
    presence = [frozenset(int(c) for c in p) for p in presence_of(pool)]
    bad = sorted({c for p in presence for c in p if not 0 <= c < num_classes})
    if bad:
        raise ValueError(f"class indices {bad} are outside 0..{num_classes - 1}")
    order = class_permutation(num_classes, seed)
    positions, counts = greedy_fill(presence, order, shots, lambda c: seeded_shuffle(c, seed),
                                    config.skip_taken)
    ids = tuple(pool[i] for i in positions)
    distinct = np.zeros(num_classes, dtype=np.int64)
    for i in positions:
        for c in presence[i]:
            distinct[c] += 1
    return SupportSample(
        shots=shots, seed=seed, image_ids=ids, class_order=tuple(order),
        images_per_class={c: int(distinct[c]) for c in range(num_classes)},
        short_classes=tuple(c for c in range(num_classes) if distinct[c] < shots),
    )
