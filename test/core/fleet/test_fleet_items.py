"""What travels between robots: the content hash (against a computation written out here), the
checks of shared images and label maps, and the ledger's JSON (lenient with damaged input)."""
from __future__ import annotations

import dataclasses
import hashlib
import struct

import numpy as np
import pytest

from rns_ros.core.fleet.items import FleetLimits, FleetUpdate, Malformed, SharedExemplar, check_update, content_hash
from rns_ros.core.fleet.ledger import ClassStamp, FleetLedger


def unit_rows(m, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((m, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).astype(np.float32)


def test_content_hash_is_sha256_of_names_and_little_endian_floats():
    feats = np.array([[0.6, 0.8], [1.0, 0.0]], np.float32)
    by_hand = hashlib.sha256(b"rns_ros.fleet.exemplar.v1\n" + b"2 2\n" + b"3:mug" + b"5:floor" +
                             struct.pack("<4f", 0.6, 0.8, 1.0, 0.0)).hexdigest()
    assert content_hash(["mug", "floor"], feats) == by_hand
    assert content_hash(["floor", "mug"], feats) != by_hand  # which row is which class matters
    assert content_hash(["mu", "gfloor"], feats) != by_hand  # names are length-prefixed
    assert content_hash(["mug", "floor"], feats.astype(">f4")) == by_hand  # byte order normalised


def update_with(exemplar: SharedExemplar) -> FleetUpdate:
    return FleetUpdate("/a/rns@h", "s", "bb", 4, 1, exemplars_added=(exemplar,))


def test_shared_images_must_fit_their_label_maps():
    image = np.zeros((6, 5, 3), np.uint8)
    labels = np.zeros((6, 5), np.uint16)
    labels[1:3, 1:3] = 1
    good = SharedExemplar.of(("mug",), unit_rows(1, 4), "/a/rns@h", image=image, labels=labels, label_names=("mug",))
    check_update(update_with(good), dim=4)
    for change, problem in (({"labels": labels[:5]}, "does not fit"),
                            ({"label_names": ()}, "need 1 label names"),
                            ({"labels": None}, "without a label map"),
                            ({"image": image[..., :2]}, "(H, W, 3) uint8"),
                            ({"label_names": ("cup",)}, "no pixel in the label map")):
        with pytest.raises(Malformed, match=problem.replace("(", r"\(").replace(")", r"\)")):
            check_update(update_with(dataclasses.replace(good, **change)), dim=4)
    with pytest.raises(Malformed, match="pixels, above"):
        check_update(update_with(good), dim=4, limits=FleetLimits(max_image_pixels=29))


def test_names_rows_and_hashes_are_checked():
    good = SharedExemplar.of(("mug",), unit_rows(1, 4), "/a/rns@h")
    for change, problem in (({"class_names": ("mug", "mug"), "features": unit_rows(2, 4)}, "names a class twice"),
                            ({"class_names": ("",)}, "non-empty"),
                            ({"content_hash": "XYZ"}, "64 lowercase hex"),
                            ({"origin": ""}, "origin must be"),
                            ({"features": unit_rows(1, 4).astype(np.float64)}, "float32")):
        with pytest.raises(Malformed, match=problem):
            check_update(update_with(dataclasses.replace(good, **change)), dim=4)
    with pytest.raises(Malformed, match="above 3"):
        check_update(update_with(good), dim=4, limits=FleetLimits(max_name_chars=3))
    with pytest.raises(Malformed, match="hash"):
        check_update(dataclasses.replace(update_with(good), exemplars_removed=("0" * 63,)), dim=4)


def test_the_ledger_round_trips_and_reads_what_it_can_of_a_damaged_one():
    ledger = FleetLedger()
    assert ledger.next_stamp("a") == (1, "a")
    ledger.witness(41)
    assert ledger.next_stamp("b") == (42, "b")  # later than everything seen
    ledger.classes["mug"] = ClassStamp(42, "b", removed=True)
    ledger.removed_exemplars.add("f" * 64)
    again = FleetLedger.from_json(ledger.to_json())
    assert again == ledger
    assert ledger.is_newer("mug", (42, "c")) and not ledger.is_newer("mug", (42, "a"))
    damaged = {"clock": "x", "classes": {"mug": [3, "a", False], "bad": [1], 7: [1, "a", True]},
               "removed_exemplars": ["h", 5]}
    partial = FleetLedger.from_json(damaged)
    assert partial.classes == {"mug": ClassStamp(3, "a")} and partial.clock == 3
    assert partial.removed_exemplars == {"h"}
    assert FleetLedger.from_json(None) == FleetLedger()
