"""The support-sampling protocol: hand-computed examples, determinism per seed, B images per class
when the pool has them, pool capping, and agreement with a re-implementation of the authors'
tensor code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rns_ros.eval.sampling import (
    SamplingConfig, candidate_pool, class_permutation, greedy_fill, paper_seeds, sample_support,
)
from rns_ros.eval.settings import SupportSetting

IDENTITY = list  # a "shuffle" that keeps the candidates in pool order


def test_greedy_fill_matches_hand_computed_example():
    presence = [frozenset({0, 1}), frozenset({1}), frozenset({2}), frozenset({0, 2}), frozenset({1, 2})]
    # class 1 takes images 0, 1 (class 1 -> 2, class 0 -> 1); class 0: image 0 is taken, takes 3
    # (class 0 -> 2, class 2 -> 1); class 2 takes 2 (-> 2).
    chosen, counts = greedy_fill(presence, [1, 0, 2], 2, IDENTITY)
    assert chosen == [0, 1, 2, 3] and counts.tolist() == [2, 2, 2]
    # Reversed candidate order: class 1 takes 4, 1; class 0 takes 3 then 0; class 2 is already at 2.
    chosen, counts = greedy_fill(presence, [1, 0, 2], 2, lambda c: c[::-1])
    assert chosen == [0, 1, 3, 4] and counts.tolist() == [2, 3, 2]


def test_authors_mode_can_draw_a_taken_image_again():
    presence = [frozenset({0, 1}), frozenset({0})]
    # Class 1 takes image 0. Class 0 needs one more: the authors' code takes the first candidate,
    # image 0 again, and counts it again: class 0 ends "at 2" with one distinct image.
    chosen, counts = greedy_fill(presence, [1, 0], 2, IDENTITY, skip_taken=False)
    assert chosen == [0] and counts.tolist() == [2, 2]
    chosen, counts = greedy_fill(presence, [1, 0], 2, IDENTITY, skip_taken=True)
    assert chosen == [0, 1] and counts.tolist() == [2, 1]


def _random_table(seed: int, n_images: int, n_classes: int):
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.6, size=n_classes)  # frequent and rare classes
    table = [sorted(np.flatnonzero(rng.random(n_classes) < freq).tolist()) for _ in range(n_images)]
    return [f"img{i:03d}" for i in range(n_images)], table


def test_sampling_is_deterministic_per_seed_and_depends_on_it():
    ids, table = _random_table(0, 60, 8)
    a = sample_support(ids, table, 8, 3, seed=42)
    assert a == sample_support(ids, table, 8, 3, seed=42)
    assert a.image_ids != sample_support(ids, table, 8, 3, seed=18).image_ids
    assert a.class_order == tuple(class_permutation(8, 42))


@pytest.mark.parametrize("seed", [100, 18, 42, 84])
@pytest.mark.parametrize("shots", [1, 2, 5])
def test_every_class_gets_b_distinct_images_when_the_pool_has_them(seed, shots):
    ids, table = _random_table(seed, 40, 10)
    sample = sample_support(ids, table, 10, shots, seed)
    chosen = [table[ids.index(i)] for i in sample.image_ids]
    for c in range(10):
        available = sum(c in t for t in table)
        got = sum(c in t for t in chosen)
        assert got == sample.images_per_class[c]
        assert got >= min(shots, available)  # B when possible, all of them otherwise
        assert (c in sample.short_classes) == (got < shots)
    # Nothing superfluous: every chosen image was needed by the class that took it, so at most
    # C * B images are drawn.
    assert len(sample.image_ids) <= 10 * shots
    assert list(sample.image_ids) == [i for i in ids if i in set(sample.image_ids)]  # pool order


def test_pool_is_capped_with_the_authors_numpy_draw():
    ids = [f"im{i}" for i in range(30)]
    np.random.seed(7)  # the reference code's global-state calls, independently of our RandomState
    reference = [ids[i] for i in np.random.choice(30, 10, replace=False)]
    assert candidate_pool(ids, 7, 10) == reference
    assert candidate_pool(ids, 7, 30) == ids
    table = [[i % 3] for i in range(30)]
    sample = sample_support(ids, table, 3, 2, seed=7, config=SamplingConfig(pool_size=10))
    assert set(sample.image_ids) <= set(reference)


def _authors_reference(table, n_classes, shots, seed):
    """The authors' create_support_set, re-written from their tensor code: boolean presence
    matrix, torch.randperm class order, a fresh seeded generator per class, no skip of taken
    images, counts over every class of the taken images."""
    labels_img = torch.zeros(len(table), n_classes, dtype=torch.bool)
    for i, classes in enumerate(table):
        labels_img[i, classes] = True
    class_indices = torch.arange(n_classes)[torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed))]
    counts = torch.zeros(n_classes, dtype=torch.int64)
    mask = torch.zeros(len(table), dtype=torch.bool)
    for idx in class_indices:
        true_indices = torch.nonzero(labels_img[:, idx]).squeeze(1)
        gen = torch.Generator().manual_seed(seed)
        true_indices = true_indices[torch.randperm(true_indices.numel(), generator=gen)]
        need = shots - counts[idx].item()
        if need <= 0:
            continue
        true_indices = true_indices[:need]
        counts += labels_img[true_indices].sum(0)
        mask[true_indices] = True
    return torch.nonzero(mask).squeeze(1).tolist()


@pytest.mark.parametrize("seed", [100, 18, 42])
def test_authors_mode_reproduces_the_reference_tensor_code(seed):
    ids, table = _random_table(seed + 1, 50, 9)
    for c in range(9):  # the reference code exits when a class has no image at all
        if not any(c in t for t in table):
            table[c].append(c)
    for shots in (1, 3, 5):
        sample = sample_support(ids, table, 9, shots, seed, SamplingConfig(skip_taken=False))
        assert [ids.index(i) for i in sample.image_ids] == _authors_reference(table, 9, shots, seed)


def test_partial_settings_drop_the_first_classes_of_the_permutation():
    perm = class_permutation(21, 42)
    visual = SupportSetting.parse("partial-visual:0.5")
    assert visual.classes_without_visual(21, 42) == frozenset(perm[:10])  # int(0.5 * 21) = 10
    assert visual.classes_without_text(21, 42) == frozenset()
    text = SupportSetting.parse("partial-text:0.25")
    assert text.classes_without_text(21, 42) == frozenset(perm[:5])
    groups = text.class_groups(21, 42)
    assert sorted(groups["named"] + groups["unnamed"]) == list(range(21))
    assert SupportSetting.parse("no-text").classes_without_text(3, 0) == frozenset({0, 1, 2})
    assert SupportSetting.parse("zero-shot").classes_without_visual(3, 0) == frozenset({0, 1, 2})
    assert SupportSetting.parse("partial-visual:0.5").name == "partial-visual:0.5"
    with pytest.raises(ValueError, match="needs a fraction"):
        SupportSetting.parse("partial-visual")
    with pytest.raises(ValueError, match="unknown support setting"):
        SupportSetting.parse("half")
    assert paper_seeds("voc") == (100, 18, 42, 84, 92, 256, 512, 1024)
    assert paper_seeds("ade20k") == (100, 18, 42, 84)


def test_refusals():
    with pytest.raises(ValueError, match="shots"):
        sample_support(["a"], [[0]], 1, 0, 0)
    with pytest.raises(ValueError, match="outside"):
        sample_support(["a"], [[3]], 2, 1, 0)
    with pytest.raises(ValueError, match="entries"):
        sample_support(["a", "b"], [[0]], 1, 1, 0)
