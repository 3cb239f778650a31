"""One rule for class names (issue 25, items 4 and 5): stripped, at most 128 characters, unique
without case, lists of names abbreviated in messages; the support memory follows it."""
import pytest
import torch

from rns_ros.core.memory.merging import merge_memory
from rns_ros.core.memory.names import (MAX_NAME_CHARS, check_new_names, clean_name, describe_names, find_name,
                                       shorten)
from rns_ros.core.memory.support import SupportMemory


def test_a_name_is_stripped_and_limited_in_length():
    assert clean_name("  mug \t") == "mug"
    assert clean_name("m" * MAX_NAME_CHARS) == "m" * 128
    for bad, reason in (("", "empty"), ("   ", "empty"), (3, "string"), ("m" * 129, "longer than 128")):
        with pytest.raises(ValueError, match=reason):
            clean_name(bad)


def test_names_are_the_same_class_without_case_and_blanks():
    assert check_new_names([" cup ", "Bowl"], ["mug"]) == ["cup", "Bowl"]
    with pytest.raises(ValueError, match="'Mug' already exists as 'mug'"):
        check_new_names(["cup", "Mug"], ["mug"])
    with pytest.raises(ValueError, match="listed twice"):
        check_new_names(["mug", " MUG "])
    assert find_name("MUG ", ["cup", "mug"]) == "mug" and find_name("plate", ["mug"]) is None
    assert find_name("Mug", ["mug", "Mug"]) == "Mug"  # an exact spelling first (memories from before the rule)


def test_messages_abbreviate_long_names_and_long_lists():
    huge = "n" * 10_000
    with pytest.raises(ValueError) as err:
        clean_name(huge)
    assert len(str(err.value)) < 250 and "10000 characters" in str(err.value)
    assert len(shorten(huge)) < 70
    listed = describe_names([f"class{i}" for i in range(20)] + [huge])
    assert listed.startswith("'class0', 'class1'") and listed.endswith("and 13 more") and len(listed) < 200
    assert describe_names([]) == "none"


def test_the_support_memory_follows_the_rule():
    memory = SupportMemory(dim=4)
    mug = memory.add_class("  Mug ")
    assert memory.class_record(mug).name == "Mug" and memory.class_id("mug ") == mug
    for name in ("mug", " MUG", "x" * 129, " "):
        with pytest.raises(ValueError):
            memory.add_class(name)
    assert memory.class_ids == [mug]
    with pytest.raises(ValueError, match="no class named 'plate'; known names: 'Mug'"):
        memory.class_id("plate")


def test_a_merge_joins_a_class_spelled_otherwise():
    target, source = SupportMemory(dim=4), SupportMemory(dim=4)
    mug = target.add_class("mug")
    source.add_class("Mug ")
    source.add_image_features(torch.eye(4)[:1], [1])
    merged = merge_memory(target, source)
    assert merged.new_class_ids == [] and merged.class_ids == {1: mug}
    assert target.class_record(mug).exemplar_ids == tuple(merged.exemplar_ids.values())
