"""SupportMemory: ids, validation (refused calls change nothing), prototypes, fusion, search."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _support_fakes import FakeBackbone, random_image
from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar
from rns_ros.core.memory.support import SupportMemory

D = 16


def unit(rng, *shape):
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    return x / x.norm(dim=-1, keepdim=True)


def snapshot(memory: SupportMemory):
    """Everything observable, for checking that a refused call changed nothing."""
    feats, classes = memory.bank()
    text, has = memory.text_matrix()
    return (memory.version, memory.class_ids, memory.exemplar_ids, memory.next_class_id,
            feats.numpy().tobytes(), classes.tolist(), text.numpy().tobytes(), has.tolist(),
            sorted(memory.index.ids().tolist()), [memory.class_record(c) for c in memory.class_ids])


def assert_refused_and_unchanged(memory: SupportMemory, calls, before) -> None:
    """Every call raises ValueError, and the memory still equals the snapshot `before`."""
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert snapshot(memory) == before


@pytest.fixture(params=["faiss", "torch"])
def memory(request):
    return SupportMemory(D, backbone_identity="fake-a", index_backend=request.param)


def test_class_ids_are_monotonic_and_never_reused(memory):
    rng = np.random.default_rng(0)
    a = memory.add_class("cat", unit(rng, D))
    b = memory.add_class("dog", None)
    c = memory.add_class(None)
    assert (a, b, c) == (1, 2, 3)
    memory.remove_class(c)
    memory.remove_class(a)
    assert memory.add_class("cat") == 4  # the name is free again, the id is not
    assert memory.class_ids == [2, 4]
    assert memory.class_id("dog") == 2
    rec = memory.class_record(2)
    assert rec.name == "dog" and not rec.has_text and rec.exemplar_ids == ()
    with pytest.raises(ValueError, match="no class named"):
        memory.class_id("horse")


def test_text_matrix_normalises_and_zero_fills(memory):
    rng = np.random.default_rng(1)
    t = torch.randn(D, generator=torch.Generator().manual_seed(0)) * 3
    memory.add_class("a", t)
    memory.add_class("b")
    memory.add_class("c", unit(rng, 1, D), prompt="a photo of c")
    mat, has = memory.text_matrix()
    assert has.tolist() == [True, False, True]
    np.testing.assert_allclose(mat[0].numpy(), (t / t.norm()).numpy(), atol=1e-6)
    assert float(mat[1].abs().sum()) == 0.0
    assert memory.class_record(3).prompt == "a photo of c"


def test_refused_class_calls_change_nothing(memory):
    memory.add_class("a", torch.ones(D))
    before = snapshot(memory)
    bad = [
        lambda: memory.add_class("a"),  # duplicate name
        lambda: memory.add_class(""),
        lambda: memory.add_class(3),
        lambda: memory.add_class("b", torch.ones(D + 1)),
        lambda: memory.add_class("b", torch.full((D,), float("nan"))),
        lambda: memory.add_class("b", torch.tensor([float("inf")] + [0.0] * (D - 1))),
        lambda: memory.add_class("b", torch.zeros(D)),
        lambda: memory.remove_class(7),
        lambda: memory.remove_class("a"),
        lambda: memory.class_record(0),
    ]
    assert_refused_and_unchanged(memory, bad, before)


def test_refused_feature_calls_change_nothing(memory):
    rng = np.random.default_rng(2)
    a = memory.add_class("a")
    b = memory.add_class("b")
    memory.add_image_features(unit(rng, 2, D), [a, b])
    before = snapshot(memory)
    image = random_image(rng, 8, 8)
    nan = unit(rng, 2, D)
    nan[1, 3] = float("nan")
    inf = unit(rng, 1, D)
    inf[0, 0] = float("inf")
    bad = [
        lambda: memory.add_image_features(unit(rng, 2, D), [a, 99]),  # unknown class id
        lambda: memory.add_image_features(nan, [a, b]),
        lambda: memory.add_image_features(inf, [a]),
        lambda: memory.add_image_features(unit(rng, 2, D + 1), [a, b]),  # wrong dim
        lambda: memory.add_image_features(unit(rng, 2, D), [a]),  # count mismatch
        lambda: memory.add_image_features(torch.zeros(0, D), []),
        lambda: memory.add_image_features(torch.zeros(1, D), [a]),  # cannot be normalised
        lambda: memory.add_image_features(torch.ones(1, D, dtype=torch.int64), [a]),
        lambda: memory.add_image_features(unit(rng, 1, D), [a],  # exemplar names an unknown class
                                          exemplar=Exemplar(image, np.full((8, 8), 5))),
        lambda: memory.add_image_features(unit(rng, 1, D), [b],  # feature for a class not in it
                                          exemplar=Exemplar.from_mask(image, np.ones((8, 8)), a)),
        lambda: memory.remove_exemplar(42),
        lambda: memory.remove_exemplars(42),
        lambda: memory.search(torch.ones(2, D + 1), 4),
        lambda: memory.search(torch.full((2, D), float("nan")), 4),
        lambda: memory.search(torch.ones(2, D), 0),
    ]
    assert_refused_and_unchanged(memory, bad, before)


def test_bank_prototypes_and_fusion_match_independent_math(memory):
    rng = np.random.default_rng(3)
    ids = [memory.add_class(n, unit(rng, D)) for n in ("a", "b", "c", "d")]
    raw = []  # unnormalised rows as given, with their class
    for cls in ([ids[0], ids[1]], [ids[0]], [ids[1], ids[3]], [ids[0], ids[3]]):
        rows = torch.from_numpy(rng.standard_normal((len(cls), D)).astype(np.float32)) * 5
        memory.add_image_features(rows, cls)
        raw += list(zip(rows.numpy(), cls))
    feats, classes = memory.bank()
    np.testing.assert_allclose(feats.norm(dim=1).numpy(), 1.0, atol=1e-6)
    assert classes.tolist() == [c for _, c in raw]
    protos, proto_ids = memory.prototypes()
    assert proto_ids.tolist() == [ids[0], ids[1], ids[3]]  # c has no visual support
    for row, c in enumerate(proto_ids.tolist()):
        s = sum(v / np.linalg.norm(v) for v, cc in raw if cc == c)
        np.testing.assert_allclose(protos[row].numpy(), s / np.linalg.norm(s), atol=1e-5)

    lambdas = (0.9, 0.5, 0.0)
    fused, fused_ids = memory.fused_features(lambdas=lambdas)
    text, _ = memory.text_matrix()
    assert fused.shape == (3, 3, D) and fused_ids.tolist() == proto_ids.tolist()
    for row, c in enumerate(proto_ids.tolist()):
        v, t = protos[row].numpy(), text[memory.class_ids.index(c)].numpy()
        for j, lam in enumerate(lambdas):
            f = lam * v + (1 - lam) * t  # lambda weights the visual part
            np.testing.assert_allclose(fused[row, j].numpy(), f / np.linalg.norm(f), atol=1e-5)
    np.testing.assert_allclose(fused[:, 2].numpy(), text[[0, 1, 3]].numpy(), atol=1e-6)


def test_fused_features_need_text_or_substitutes(memory):
    rng = np.random.default_rng(4)
    a = memory.add_class("a")
    memory.add_image_features(unit(rng, 1, D), [a])
    with pytest.raises(ValueError, match="no text"):
        memory.fused_features()
    sub = unit(rng, 1, D)
    fused, _ = memory.fused_features(sub, lambdas=(0.0,))
    np.testing.assert_allclose(fused[0, 0].numpy(), sub[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        memory.fused_features(unit(rng, 2, D))


def test_search_matches_brute_force_over_bank(memory):
    rng = np.random.default_rng(5)
    ids = [memory.add_class(f"c{i}") for i in range(5)]
    eids = [memory.add_image_features(unit(rng, 3, D), list(rng.choice(ids, 3))) for _ in range(30)]
    for eid in eids[::4]:
        memory.remove_exemplar(eid)
    memory.remove_class(ids[2])
    queries = unit(rng, 25, D)
    scores, classes, rows = memory.search(queries, 4)
    feats, bank_classes = memory.bank()
    sims = queries.double() @ feats.double().T
    exp_scores, exp_rows = torch.topk(sims, 4, dim=1)
    assert rows.tolist() == exp_rows.tolist()
    assert classes.tolist() == bank_classes[exp_rows].tolist()
    assert ids[2] not in classes.flatten().tolist()
    np.testing.assert_allclose(scores.numpy(), exp_scores.numpy(), atol=1e-5)
    empty = SupportMemory(D, index_backend=memory.index_backend)
    s, c, r = empty.search(queries, 4)
    assert s.shape == c.shape == r.shape == (25, 0)


def test_remove_class_keeps_other_classes_of_shared_exemplars(memory):
    rng = np.random.default_rng(6)
    backbone = FakeBackbone(dim=D)
    a, b = memory.add_class("a"), memory.add_class("b")
    image = random_image(rng, 12, 12)
    labels = np.zeros((12, 12), np.int64)
    labels[:6], labels[6:] = a, b
    both = Exemplar(image, labels)
    only_a = Exemplar.from_mask(image, labels == a, a)
    e_both = memory.add_image_features(*encode_exemplar(backbone, both), exemplar=both)
    e_a = memory.add_image_features(*encode_exemplar(backbone, only_a), exemplar=only_a)
    assert memory.class_record(a).exemplar_ids == (e_both, e_a)
    feats_b, _ = encode_exemplar(backbone, both)
    version = memory.version
    memory.remove_class(a)
    assert memory.version > version
    assert memory.exemplar_ids == [e_both]
    kept_feats, kept_ids = memory.exemplar_features(e_both)
    assert kept_ids == [b]
    np.testing.assert_allclose(kept_feats[0].numpy(), feats_b[1].numpy(), atol=1e-6)
    assert memory.exemplar(e_both).class_ids() == [b]  # the raw label map lost class a too
    assert memory.bank()[1].tolist() == [b] and len(memory.index) == 1


def test_remove_exemplars_of_a_class_and_versions(memory):
    rng = np.random.default_rng(7)
    a, b = memory.add_class("a"), memory.add_class("b")
    e1 = memory.add_image_features(unit(rng, 1, D), [a])
    e2 = memory.add_image_features(unit(rng, 2, D), [a, b])
    e3 = memory.add_image_features(unit(rng, 1, D), [b])
    v = memory.version
    assert memory.remove_exemplars(a) == [e1, e2]
    assert memory.version == v + 1 and memory.exemplar_ids == [e3] and memory.num_exemplars == 1
    assert memory.remove_exemplars(a) == [] and memory.version == v + 1
    assert memory.class_ids == [a, b]  # the class stays
    e4 = memory.add_image_features(unit(rng, 1, D), [a])
    assert e4 == 4  # exemplar ids are not reused either
    assert memory.prototypes()[1].tolist() == [a, b]


def test_bank_views_are_snapshots_that_updates_never_change(memory):
    rng = np.random.default_rng(8)
    a, b = memory.add_class("a"), memory.add_class("b")
    e1 = memory.add_image_features(unit(rng, 2, D), [a, b])
    feats, classes = memory.bank()
    frozen = (feats.clone(), classes.clone())
    for _ in range(300):  # grows the buffers past their first capacity
        memory.add_image_features(unit(rng, 1, D), [b])
    memory.remove_exemplar(e1)
    assert torch.equal(feats, frozen[0]) and torch.equal(classes, frozen[1])
    assert memory.num_features == 300 and memory.bank()[1].tolist() == [b] * 300


def test_a_replacing_memory_continues_the_version_sequence():
    from rns_ros.core.memory.support import SupportMemory

    running = SupportMemory(dim=4)
    for name in ("a", "b", "c"):
        running.add_class(name)
    loaded = SupportMemory(dim=4)
    loaded.add_class("x")
    assert loaded.version < running.version
    loaded.continue_version_after(running.version)
    assert loaded.version == running.version + 1
    ahead = loaded.version
    loaded.continue_version_after(0)  # never goes back
    assert loaded.version == ahead


def test_unit_norm_rows_are_stored_bit_for_bit_and_others_normalised():
    """A row that is unit-norm already is kept as given (a second normalisation changes the last
    bit of many float32 rows: a saved and loaded memory, or a copy on another robot, would differ);
    any other row is normalised."""
    memory = SupportMemory(dim=64)
    cid = memory.add_class("a", text_feature=torch.nn.functional.normalize(torch.randn(64), dim=0))
    unit = torch.nn.functional.normalize(torch.randn(200, 64), dim=1)
    assert not torch.equal(torch.nn.functional.normalize(unit, dim=1), unit)  # why it matters
    for row in unit:
        memory.add_image_features(row[None], [cid])
    assert torch.equal(memory.bank()[0], unit)
    scaled = unit[:3] * torch.tensor([[2.0], [0.5], [1.01]])
    eid = memory.add_image_features(scaled, [cid] * 3)
    np.testing.assert_allclose(memory.exemplar_features(eid)[0].norm(dim=1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(memory.exemplar_features(eid)[0].numpy(), unit[:3].numpy(), atol=1e-6)
    text = torch.nn.functional.normalize(torch.randn(64), dim=0)
    memory.set_text_feature(cid, text)
    assert torch.equal(memory.text_feature(cid), text)
