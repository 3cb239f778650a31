"""Shared by the region tests: the TEST-ONLY tiny SAM 2 (random weights), one proposer and one
prompted image per module."""
from __future__ import annotations

import numpy as np
import pytest

from _tiny_sam2 import TINY
from rns_ros.core.regions.prompts import PromptMasker
from rns_ros.core.regions.proposals import RegionProposer


@pytest.fixture(scope="module")
def proposer():
    return RegionProposer(TINY)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def masker(proposer, image):
    m = PromptMasker(proposer.model, config=TINY)
    m.set_image(image)
    return m
