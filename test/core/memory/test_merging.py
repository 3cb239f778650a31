"""merge_memory: what another memory was taught joins this one — same-name classes joined, the
rest added under new ids, the target's ids untouched, features and renumbered raw exemplars
carried over, retrieval answering with target ids; refusals that change nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rns_ros.core.memory.exemplars import Exemplar
from rns_ros.core.memory.merging import classes_to_create, merge_memory
from rns_ros.core.memory.support import SupportMemory

D = 16


def unit(rng, *shape):
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    return x / x.norm(dim=-1, keepdim=True)


def exemplar(rng, class_ids):
    """A 12 x 12 image whose label map gives each class a band of rows."""
    labels = np.zeros((12, 12), np.int64)
    for i, cid in enumerate(class_ids):
        labels[3 * i: 3 * i + 3] = cid
    return Exemplar(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), labels)


def teach(memory, rng, class_ids):
    return memory.add_image_features(unit(rng, len(class_ids), D), class_ids, exemplar=exemplar(rng, class_ids))


def snapshot(memory):
    feats, classes = memory.bank()
    return (memory.version, [(c.id, c.name, c.prompt, c.has_text, c.exemplar_ids) for c in memory.classes],
            memory.exemplar_ids, feats.numpy().tobytes(), classes.tolist())


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    target = SupportMemory(D, backbone_identity="bb")
    mug, floor = target.add_class("mug", unit(rng, D)), target.add_class("floor", unit(rng, D))
    target.remove_class(target.add_class("gone"))  # id 3 is used up: new ids must continue after it
    teach(target, rng, [mug, floor])

    source = SupportMemory(D, backbone_identity="bb")
    s_floor = source.add_class("floor", unit(rng, D))  # the same name: joins target class `floor`
    s_cup = source.add_class("my cup", unit(rng, D), prompt="a blue cup with a white handle")
    s_blob = source.add_class(None)  # nameless: always a new class
    teach(source, rng, [s_floor, s_cup])
    teach(source, rng, [s_blob])
    source.add_image_features(unit(rng, 1, D), [s_cup])  # features only, no raw exemplar
    return target, source, dict(mug=mug, floor=floor, s_floor=s_floor, s_cup=s_cup, s_blob=s_blob)


def test_classes_to_create_names_the_classes_a_merge_adds_before_it_runs(pair):
    """What a caller checks before merging (the node refuses ids beyond one byte with aligned outputs)."""
    target, source, ids = pair
    planned = [record.id for record in classes_to_create(target, source)]
    before = target.next_class_id
    result = merge_memory(target, source)
    assert planned == [ids["s_cup"], ids["s_blob"]]
    assert result.new_class_ids == list(range(before, before + len(planned)))


def test_merge_joins_same_names_adds_the_rest_and_keeps_target_ids(pair):
    target, source, ids = pair
    before = {c.id: c for c in target.classes}
    old_exemplars = target.exemplar_ids
    floor_text = target.text_feature(ids["floor"])
    assert not torch.equal(floor_text, source.text_feature(ids["s_floor"]))
    result = merge_memory(target, source)

    assert result.class_ids == {ids["s_floor"]: ids["floor"], ids["s_cup"]: 4, ids["s_blob"]: 5}
    assert result.new_class_ids == [4, 5]
    records = {c.id: c for c in target.classes}
    assert records[ids["mug"]] == before[ids["mug"]]  # untouched
    assert (records[4].name, records[4].prompt, records[5].name) == ("my cup", "a blue cup with a white handle", None)
    torch.testing.assert_close(target.text_feature(4), source.text_feature(ids["s_cup"]))
    assert torch.equal(target.text_feature(ids["floor"]), floor_text)  # a joined class keeps its text
    assert target.exemplar_ids == old_exemplars + sorted(result.exemplar_ids.values())
    for s_eid, t_eid in result.exemplar_ids.items():
        s_feats, s_classes = source.exemplar_features(s_eid)
        t_feats, t_classes = target.exemplar_features(t_eid)
        assert torch.equal(s_feats, t_feats) and t_classes == [result.class_ids[c] for c in s_classes]
        s_raw, t_raw = source.exemplar(s_eid), target.exemplar(t_eid)
        if s_raw is None:
            assert t_raw is None
            continue
        assert np.array_equal(s_raw.image, t_raw.image)
        expected = np.vectorize(lambda c: 0 if c == 0 else result.class_ids[c])(s_raw.labels)
        assert np.array_equal(t_raw.labels, expected)
    # retrieval answers in target ids: every source feature finds itself, under its mapped class
    s_feats, s_classes = source.bank()
    _, classes, _ = target.search(s_feats, 1)
    assert classes[:, 0].tolist() == [result.class_ids[c] for c in s_classes.tolist()]


def test_merge_into_an_empty_memory_copies_and_twice_joins(pair):
    _, source, _ = pair
    empty = SupportMemory(D, backbone_identity="bb")
    first = merge_memory(empty, source)
    assert [c.name for c in empty.classes] == [c.name for c in source.classes]
    assert empty.num_features == source.num_features
    second = merge_memory(empty, source)  # named classes join, the nameless one is added again
    named = {c: t for c, t in second.class_ids.items() if source.class_record(c).name is not None}
    assert all(first.class_ids[c] == t for c, t in named.items()) and len(second.new_class_ids) == 1
    assert empty.num_features == 2 * source.num_features


@pytest.mark.parametrize("other", [SupportMemory(D + 1, backbone_identity="bb"),
                                   SupportMemory(D, backbone_identity="another")])
def test_merge_refuses_other_features_and_changes_nothing(pair, other):
    target, _, _ = pair
    other.add_class("x")
    before = snapshot(target)
    with pytest.raises(ValueError, match="cannot merge"):
        merge_memory(target, other)
    assert snapshot(target) == before
