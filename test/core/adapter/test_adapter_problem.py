"""The training problem of RNS test-time training (sections 3-4), each term checked against an
independent numpy / plain-Python computation written from rns-method.md."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.problem import (FUSED, PSEUDO, RETRIEVED, build_training_problem,
                                          relevance_weights, substitute_missing_text)

D, C = 12, 5


def unit_np(rng, *shape):
    x = rng.standard_normal(shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def normalise(v):
    return v / np.linalg.norm(v)


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


class Case:
    """Explicit inputs of build_training_problem, in numpy (float64, for the hand computations)
    and torch (float32, for the code). Classes 0..C-1; `visual` lists the classes with bank rows."""

    def __init__(self, seed=0, visual=(0, 1, 2), text=(0, 1, 2, 3, 4), queries=30, per_class=3):
        rng = np.random.default_rng(seed)
        self.text = unit_np(rng, C, D)
        self.text[[c for c in range(C) if c not in text]] = 0.0
        self.has_text = np.array([c in text for c in range(C)])
        labels = [c for c in visual for _ in range(per_class)]
        centre = unit_np(rng, C, D)
        self.bank = np.stack([normalise(centre[c] + 0.4 * rng.standard_normal(D)) for c in labels]) \
            if labels else np.zeros((0, D))
        self.bank_labels = np.array(labels, dtype=np.int64)
        self.visual = sorted(visual)
        self.protos = np.stack([normalise(self.bank[self.bank_labels == c].sum(0)) for c in self.visual]) \
            if self.visual else np.zeros((0, D))
        shown = rng.integers(0, C, queries)
        self.queries = np.stack([normalise(centre[c] + 0.5 * rng.standard_normal(D)) for c in shown])

    def build(self, config=AdapterConfig(), search_rows=None):
        f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        return build_training_problem(
            f(self.queries), f(self.bank), torch.tensor(self.bank_labels), f(self.protos),
            torch.tensor(self.visual, dtype=torch.int64), f(self.text), torch.tensor(self.has_text),
            config, search_rows)

    def nearest_union(self, k):
        rows = set()
        for q in self.queries:
            rows.update(np.argsort(-(self.bank @ q), kind="stable")[:k].tolist())
        return sorted(rows)


def test_relevance_weights_match_eq_9():
    case = Case()
    g = normalise(case.queries.mean(0))
    expected = softmax(np.array([g @ t / 0.1 for t in case.text]))
    got = relevance_weights(torch.tensor(case.queries, dtype=torch.float32),
                            torch.tensor(case.text, dtype=torch.float32), 0.1, uniform=False)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    problem = case.build()
    np.testing.assert_allclose(problem.relevance.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("config,case_kwargs", [
    (AdapterConfig(relevance_weights=False), {}),
    (AdapterConfig(use_text=False), {}),
    (AdapterConfig(), {"text": (0, 1, 3)}),  # a class without text
])
def test_relevance_weights_uniform_cases(config, case_kwargs):
    problem = Case(**case_kwargs).build(config)
    np.testing.assert_allclose(problem.relevance.numpy(), np.full(C, 1 / C), rtol=1e-6)


def test_retrieved_rows_are_the_union_of_k_nearest_per_query():
    case = Case()
    for k in (1, 2, 4):
        problem = case.build(AdapterConfig(k=k))
        expected = case.nearest_union(k)
        assert problem.retrieved_rows.tolist() == expected
        retrieved = problem.kinds == RETRIEVED
        np.testing.assert_allclose(problem.features[retrieved].numpy(), case.bank[expected], atol=1e-6)
        assert problem.labels[retrieved].tolist() == case.bank_labels[expected].tolist()


def test_search_rows_from_an_index_are_deduplicated_and_unfilled_slots_dropped():
    case = Case()
    search = torch.tensor([[3, 1, -1], [1, 3, 0], [7, -1, -1]])
    problem = case.build(search_rows=search)
    assert problem.retrieved_rows.tolist() == [0, 1, 3, 7]


def test_random_retrieval_draws_the_same_number_of_distinct_rows_seeded():
    case = Case(per_class=6)
    nearest = case.build(AdapterConfig(k=1)).retrieved_rows
    random_a = case.build(AdapterConfig(k=1, retrieval="random", seed=3)).retrieved_rows
    random_b = case.build(AdapterConfig(k=1, retrieval="random", seed=3)).retrieved_rows
    random_c = case.build(AdapterConfig(k=1, retrieval="random", seed=4)).retrieved_rows
    assert random_a.numel() == nearest.numel() == len(set(random_a.tolist()))
    assert random_a.tolist() == random_b.tolist()
    assert random_a.tolist() != random_c.tolist()
    assert all(0 <= r < len(case.bank) for r in random_a.tolist())


def test_fused_rows_follow_eq_4_visual_weighted_lambda_major():
    case = Case()
    problem = case.build()
    retrieved_classes = sorted(set(case.bank_labels[problem.retrieved_rows.numpy()].tolist()))
    fused = (problem.kinds == FUSED).numpy()
    expected_rows, expected_labels = [], []
    for lam in AdapterConfig().lambdas:
        for c in retrieved_classes:
            v = case.protos[case.visual.index(c)]
            expected_rows.append(normalise(lam * v + (1 - lam) * case.text[c]))
            expected_labels.append(c)
    np.testing.assert_allclose(problem.features[fused].numpy(), np.array(expected_rows), atol=1e-6)
    assert problem.labels[fused].tolist() == expected_labels
    # lambda = 0 gives the pure text feature (the implementation's convention)
    last = problem.features[fused][-len(retrieved_classes):].numpy()
    np.testing.assert_allclose(last, case.text[retrieved_classes], atol=1e-6)


def test_single_lambda_ablation_gives_one_fused_row_per_retrieved_class():
    case = Case()
    problem = case.build(AdapterConfig(lambdas=(0.8,)))
    retrieved_classes = set(case.bank_labels[problem.retrieved_rows.numpy()].tolist())
    assert problem.count(FUSED) == len(retrieved_classes)
    row = problem.features[problem.kinds == FUSED][0].numpy()
    c = min(retrieved_classes)
    np.testing.assert_allclose(row, normalise(0.8 * case.protos[case.visual.index(c)] + 0.2 * case.text[c]),
                               atol=1e-6)


def test_pseudo_rows_and_soft_targets_for_classes_without_visual_support():
    case = Case(visual=(0, 1), queries=60)
    problem = case.build()
    zero_shot = [int(np.argmax(case.text @ q)) for q in case.queries]  # argmax of softmax(100 q.t)
    without_visual = sorted({c for c in zero_shot if c not in case.visual})
    assert without_visual, "the case must exercise pseudo rows"
    rows, targets = [], []
    for lam in AdapterConfig().lambdas:
        for c in without_visual:
            u = normalise(np.mean([q for q, z in zip(case.queries, zero_shot) if z == c], axis=0))
            f = normalise(lam * u + (1 - lam) * case.text[c])
            rows.append(f)
            targets.append(softmax(100.0 * (case.text @ f)))
    pseudo = (problem.kinds == PSEUDO).numpy()
    np.testing.assert_allclose(problem.features[pseudo].numpy(), np.array(rows), atol=1e-5)
    np.testing.assert_allclose(problem.targets[pseudo].numpy(), np.array(targets), atol=1e-5)
    assert problem.labels[pseudo].tolist() == [int(np.argmax(t)) for t in targets]
    # classes with visual support never get pseudo rows; the others only when some query picks them
    assert problem.count(PSEUDO) == len(without_visual) * len(AdapterConfig().lambdas)


def test_full_visual_support_has_no_pseudo_rows():
    assert Case(visual=range(C)).build().count(PSEUDO) == 0


def test_no_pseudo_ablation_removes_the_pseudo_rows_and_keeps_the_rest():
    """Not a zero weight: the rows are gone, so the L1-normalised weights of the others change too."""
    case = Case(visual=(0, 1), queries=60)
    full, ablated = case.build(), case.build(AdapterConfig(pseudo_labels=False))
    assert full.count(PSEUDO) > 0 and ablated.count(PSEUDO) == 0
    keep = (full.kinds != PSEUDO).numpy()
    assert ablated.num_rows == int(keep.sum())
    np.testing.assert_allclose(ablated.features.numpy(), full.features[keep].numpy(), atol=1e-6)
    assert ablated.labels.tolist() == full.labels[keep].tolist()
    w = full.weights[keep].double().numpy()  # the remaining rows' share, renormalised
    np.testing.assert_allclose(ablated.weights.double().numpy(), w / w.sum(), rtol=1e-5)


def test_missing_text_is_replaced_by_the_normalised_mean_text():
    case = Case(text=(0, 2, 4))
    mean_text = normalise(case.text[[0, 2, 4]].mean(0))
    got = substitute_missing_text(torch.tensor(case.text, dtype=torch.float32), torch.tensor(case.has_text))
    for c in range(C):
        np.testing.assert_allclose(got[c].numpy(), case.text[c] if c in (0, 2, 4) else mean_text, atol=1e-6)
    problem = case.build()
    np.testing.assert_allclose(problem.text[1].numpy(), mean_text, atol=1e-6)
    # class 1 has visual support but no text: its fused rows mix v_1 with the mean text
    fused_1 = problem.features[(problem.kinds == FUSED) & (problem.labels == 1)][0].numpy()
    lam = AdapterConfig().lambdas[0]
    np.testing.assert_allclose(fused_1, normalise(lam * case.protos[1] + (1 - lam) * mean_text), atol=1e-6)


def test_without_text_trains_on_retrieved_rows_only_with_uniform_weights():
    for problem in (Case().build(AdapterConfig(use_text=False)), Case(text=()).build()):
        assert problem.mode == "train" and not problem.text_available
        assert problem.count(FUSED) == problem.count(PSEUDO) == 0
        assert problem.count(RETRIEVED) == problem.num_rows > 0
        np.testing.assert_allclose(problem.weights.numpy(), np.full(problem.num_rows, 1 / problem.num_rows),
                                   rtol=1e-6)


def test_sample_weights_are_relevance_of_label_l1_normalised_and_betas_per_kind():
    case = Case(visual=(0, 1), queries=60)
    config = AdapterConfig(beta_fused=1.5, beta_pseudo=0.2)
    problem = case.build(config)
    w = problem.relevance.double().numpy()
    raw = [w[int(label)] for label in problem.labels]
    total = math.fsum(raw)
    np.testing.assert_allclose(problem.weights.numpy(), [r / total for r in raw], rtol=1e-5)
    beta = {RETRIEVED: 1.0, FUSED: 1.5, PSEUDO: 0.2}
    np.testing.assert_allclose(problem.loss_weights.numpy(),
                               [beta[int(k)] * r / total for k, r in zip(problem.kinds, raw)], rtol=1e-5)
    kinds = problem.kinds.tolist()
    assert kinds == sorted(kinds), "rows are ordered retrieved, fused, pseudo"
    assert {RETRIEVED, FUSED, PSEUDO} <= set(kinds)
    np.testing.assert_allclose(problem.targets.sum(1).numpy(), 1.0, atol=1e-5)


def test_no_visual_support_falls_back_to_zero_shot_or_uniform():
    assert Case(visual=()).build().mode == "zero_shot"
    assert Case(visual=(), text=()).build().mode == "uniform"
    assert Case(visual=()).build(AdapterConfig(use_text=False)).mode == "uniform"


def test_bad_shapes_and_labels_are_refused():
    case = Case()
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    args = [f(case.queries), f(case.bank), torch.tensor(case.bank_labels), f(case.protos),
            torch.tensor(case.visual), f(case.text), torch.tensor(case.has_text), AdapterConfig()]
    bad_queries = list(args)
    bad_queries[0] = f(case.queries[:, :-1])
    with pytest.raises(ValueError, match="queries"):
        build_training_problem(*bad_queries)
    bad_labels = list(args)
    bad_labels[2] = torch.full_like(args[2], C)
    with pytest.raises(ValueError, match="bank_labels"):
        build_training_problem(*bad_labels)
