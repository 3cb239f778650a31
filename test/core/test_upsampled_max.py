"""Labels and confidence from the classes that can win only (segmenter.upsampled_max): what
upsampling every class and taking the maximum gives (the full computation, `_upsample(...).max(0)`,
which the segmenter ran before), and fewer classes upsampled where few can win.

"The same" up to float rounding: torch's interpolation kernel rounds a channel slightly differently
depending on how many channels it is given (measured <= 2e-7), so the confidence is compared to
1e-6 and a label may differ only at a pixel where the full computation's two best classes are
within 1e-6 of each other (a float-rounding tie)."""
import pytest
import torch

from rns_ros.core.segmenter import _upsample, upsampled_max, winner_candidates

# (grid, padded, resized, image): a cpu-fast 640x480 frame, the same downscaled (image smaller than
# the resized one), resized == image (no second resize), one-patch-high strips and a 2 x 2 grid
GEOMETRIES = [((14, 19), (224, 304), (224, 298), (480, 640)),
              ((14, 19), (224, 304), (224, 298), (100, 133)),
              ((6, 8), (96, 128), (96, 128), (96, 128)),
              ((1, 9), (16, 144), (12, 140), (31, 367)),
              ((2, 2), (32, 32), (30, 27), (61, 55))]


def full_max(probs, geometry):
    return _upsample(probs, *geometry).max(0)


def assert_identical(probs, geometry):
    confidence, index = upsampled_max(probs, *geometry)
    full = _upsample(probs, *geometry)
    expected_confidence, expected_index = full.max(0)
    torch.testing.assert_close(confidence, expected_confidence, rtol=0, atol=1e-6)
    top2 = full.topk(2, dim=0).values if full.shape[0] > 1 else torch.stack([full[0], full[0] - 1])
    tie = (top2[0] - top2[1]) <= 1e-6
    assert torch.equal(index[~tie], expected_index[~tie])
    return int(tie.sum())


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("classes", [1, 7, 60])
@pytest.mark.parametrize("sharpness", [0.3, 30.0])  # nearly flat to nearly one-hot probabilities
def test_the_same_bits_as_upsampling_every_class(geometry, classes, sharpness):
    generator = torch.Generator().manual_seed(classes * 1000 + int(sharpness * 10))
    cells = geometry[0][0] * geometry[0][1]
    ties = 0
    for _ in range(3):
        logits = torch.randn(cells, classes, generator=generator) * sharpness
        ties += assert_identical(torch.softmax(logits, dim=1), geometry)
    assert ties <= 3 * geometry[3][0] * geometry[3][1] // 1000  # rounding ties are rare: most pixels are compared


@pytest.mark.parametrize("geometry", GEOMETRIES[:2])
def test_near_ties_and_a_class_that_wins_only_between_patches(geometry):
    grid = geometry[0]
    cells = grid[0] * grid[1]
    generator = torch.Generator().manual_seed(5)
    probs = torch.full((cells, 4), 0.01)
    # class 1 and class 2 alternate as the top class of neighbouring patches (0.6 / 0.4); class 3
    # is 0.51 everywhere: never any patch's top, but it wins between patches, where 1 and 2 average 0.5
    columns = torch.arange(cells) % grid[1]
    probs[:, 1] = torch.where(columns % 2 == 0, 0.6, 0.4)
    probs[:, 2] = 1.0 - probs[:, 1]
    probs[:, 3] = 0.51
    assert_identical(probs, geometry)
    index = upsampled_max(probs, *geometry)[1]
    assert set(index.unique().tolist()) == {1, 2, 3}
    # exact ties: two identical classes resolve to the lower index, as the full maximum does
    tied = torch.cat([probs, probs[:, 3:]], dim=1)
    assert_identical(tied, geometry)
    assert 4 not in upsampled_max(tied, *geometry)[1].unique().tolist()
    # a class 2e-6 below the winner between patches (above the rounding, below the pruning margin)
    close = probs.clone()
    close[:, 3] = 0.5 - 2e-6
    assert 3 in winner_candidates(close, grid).tolist()
    assert_identical(close, geometry)
    noisy = (probs + 1e-7 * torch.rand(probs.shape, generator=generator)).clamp(min=0)
    assert_identical(noisy, geometry)


def test_only_the_classes_that_can_win_are_upsampled():
    grid = (14, 19)
    probs = torch.full((grid[0] * grid[1], 100), 0.001)
    probs[:, 7] = 0.5  # 7 wins everywhere but in one corner, where 42 does
    probs[0, 42] = 0.9
    keep = winner_candidates(probs, grid)
    assert keep is not None and keep.tolist() == [7, 42]
    assert_identical(probs, GEOMETRIES[0])
    # a class that wins nowhere is dropped even where it is the runner-up everywhere
    probs[:, 3] = 0.4
    assert winner_candidates(probs, grid).tolist() == [7, 42]


def test_every_class_or_non_finite_values_take_the_full_path():
    grid = (2, 2)
    assert winner_candidates(torch.eye(4), grid) is None  # each class wins one patch
    bad = torch.full((4, 3), 0.2)
    bad[0, 1] = float("nan")
    assert winner_candidates(bad, grid) is None
    assert winner_candidates(torch.ones(4, 1), grid) is None
