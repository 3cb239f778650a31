"""The fast solver against the plain reference loop, same seed and start: the default (exact
steps) gives the plain loop's probabilities to float rounding on every adapter setting and on a
sweep of hard scenarios (issue 14: >= 99.5% identical argmax and max |dp| <= 0.005 required; it
does far better); the opt-in subspace steps stay within issue 6's tolerance (99.5%, 0.02) on
moderate problems. And the speed options (batched frames, L-BFGS)."""
from __future__ import annotations

import pytest
import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.test_time import TestTimeAdapter, predict_from_problem
from rns_ros.core.adapter.options import solve_fast_batched, solve_lbfgs
from rns_ros.core.adapter.synthetic import HARD_SCENARIOS, SyntheticScenario, build_scenario
from rns_ros.core.adapter.fast import solve_fast, subspace_basis, subspace_rank
from rns_ros.core.adapter.plain import plain_loss, initial_parameters

SMALL = dict(num_classes=8, dim=48, support_per_class=10, num_queries=400, classes_in_image=5)


# Small problems: one thread is fastest and immune to a busy shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def agreement(fast: torch.Tensor, plain: torch.Tensor) -> tuple[float, float]:
    """(share of identical argmax, max |dp|)."""
    same = float((fast.argmax(1) == plain.argmax(1)).double().mean())
    return same, float((fast - plain).abs().max())


def with_(config: AdapterConfig, **changes) -> AdapterConfig:
    return AdapterConfig(**{**config.__dict__, **changes})


def solve_both(spec: SyntheticScenario, config: AdapterConfig, fast_variants):
    """Plain-loop probabilities and those of each fast variant (dict of knobs) on one problem."""
    queries, memory = build_scenario(spec)
    queries, problem = TestTimeAdapter(config).build_problem(queries, memory)
    plain = predict_from_problem(problem, queries, with_(config, solver="plain"))
    fast = [predict_from_problem(problem, queries, with_(config, solver="fast", **knobs))
            for knobs in fast_variants]
    return problem, plain, fast


SETTINGS = {
    "default": (dict(), dict()),
    "partial-visual": (dict(visual_fraction=0.5), dict()),
    "partial-text": (dict(text_fraction=0.6), dict()),
    "no-text-at-all": (dict(text_fraction=0.0), dict()),
    "w/o-text": (dict(), dict(use_text=False)),
    "single-lambda": (dict(), dict(lambdas=(0.8,))),
    "k=1": (dict(), dict(k=1)),
    "k=16": (dict(), dict(k=16)),
    "random-retrieval": (dict(), dict(retrieval="random")),
    "no-relevance-weights": (dict(), dict(relevance_weights=False)),
    "paper-adam-lr0.02": (dict(), dict(optimizer="adam", lr=0.02, weight_decay=0.0)),
    "zeros-start": (dict(visual_fraction=0.75), dict(init="zeros")),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_fast_matches_plain_on_every_setting(name):
    """The default (exact steps; the compiled kernel's softmax where a C compiler exists) and its
    torch-operations execution agree to float rounding; the opt-in subspace steps (exercised here
    on d = 48 with 2 extra directions), compiled and as torch operations, within issue 6's
    tolerance. 300 steps keep the suite fast; 700-step runs are below and in the bench."""
    spec_kwargs, config_kwargs = SETTINGS[name]
    spec = SyntheticScenario(**{**SMALL, **spec_kwargs, "seed": len(name)})
    config = AdapterConfig(seed=2, steps=300, **config_kwargs)
    subspace = {"fast_subspace": True, "fast_extra_rank": 2}
    problem, plain, fast_runs = solve_both(spec, config, [
        {}, {"fast_kernel": "torch"}, subspace, {**subspace, "fast_kernel": "torch"}])
    assert problem.mode == "train"
    assert subspace_rank(problem, config) == 0 and subspace_rank(problem, with_(config, **subspace)) > 0
    for exact in fast_runs[:2]:
        same, dp = agreement(exact, plain)
        assert same == 1.0 and dp <= 1e-4, (same, dp)
    for probs in fast_runs[2:]:
        same, dp = agreement(probs, plain)
        assert same >= 0.995 and dp <= 0.02, (same, dp)


@pytest.mark.slow
def test_default_matches_plain_on_hard_scenarios():
    """The default at the paper's 700 steps on every hard scenario (noise up to 2.0, partial visual
    and textual support, 5 to 50 classes: synthetic.HARD_SCENARIOS), compiled-kernel and torch
    executions: the issue's bar (>= 99.5% identical argmax, max |dp| <= 0.005) per scenario, and
    max |dp| at float-rounding level (1e-4), which is what exact steps give."""
    for spec in HARD_SCENARIOS:
        problem, plain, fast_runs = solve_both(spec, AdapterConfig(seed=spec.seed), [{}, {"fast_kernel": "torch"}])
        assert problem.mode == "train" and problem.num_rows >= 100
        for fast in fast_runs:
            same, dp = agreement(fast, plain)
            assert same >= 0.995 and dp <= 1e-4, (spec, same, dp)


@pytest.mark.parametrize("seed,num_classes,support,in_image", [(11, 20, 60, 8), (12, 13, 40, 10)])
def test_fast_subspace_option_matches_plain_at_realistic_size(seed, num_classes, support, in_image):
    """d = 512, hundreds of training rows, 800 queries, 700 steps, moderate noise: the opt-in
    subspace steps (compiled kernel where a C compiler exists, and torch operations) stay within
    issue 6's tolerance. On hard problems they do not (docs/adapter.md), hence not the default."""
    spec = SyntheticScenario(num_classes=num_classes, dim=512, support_per_class=support,
                             num_queries=800, classes_in_image=in_image, visual_fraction=0.85,
                             text_fraction=0.95, seed=seed)
    config = AdapterConfig(seed=seed, fast_subspace=True)
    problem, plain, fast_runs = solve_both(spec, config, [{}, {"fast_kernel": "torch"}])
    assert problem.num_rows >= 250 and subspace_rank(problem, config) > 0
    for fast in fast_runs:
        same, dp = agreement(fast, plain)
        assert same >= 0.995 and dp <= 0.02, (same, dp)


def test_subspace_rank_is_labels_plus_extra_or_exact_where_it_saves_nothing():
    queries, memory = build_scenario(SyntheticScenario(**{**SMALL, "dim": 512, "seed": 4}))
    _, problem = TestTimeAdapter().build_problem(queries, memory)
    labels = int(torch.unique(problem.labels).numel())
    assert subspace_rank(problem, AdapterConfig(fast_subspace=True)) == labels + 4
    assert subspace_rank(problem, AdapterConfig(fast_subspace=True, fast_extra_rank=0)) == labels
    assert subspace_rank(problem, AdapterConfig()) == 0  # the default: exact steps
    tiny = problem.__class__(**{**problem.__dict__, "features": problem.features[:12],
                                "labels": problem.labels[:12]})
    assert subspace_rank(tiny, AdapterConfig(fast_subspace=True)) == 0  # 12 rows: full-rank steps are cheaper


def test_subspace_basis_is_orthonormal_holds_class_means_and_top_directions():
    generator = torch.Generator().manual_seed(0)
    low = torch.randn(300, 5, generator=generator) @ torch.randn(5, 64, generator=generator)
    inputs = low + 1e-3 * torch.randn(300, 64, generator=generator)
    inputs[:3] = torch.randn(3, 64, generator=generator)  # a rare class: 3 rows off the main subspace
    labels = torch.cat([torch.zeros(3, dtype=torch.int64), torch.ones(297, dtype=torch.int64)])
    weights = torch.rand(300, generator=generator)
    basis = subspace_basis(inputs, labels, weights, extra_rank=5, seed=0)
    assert basis.shape == (7, 64)
    torch.testing.assert_close(basis @ basis.T, torch.eye(7), atol=1e-5, rtol=0)
    rare_mean = (inputs[:3] * weights[:3, None]).sum(0)
    assert float((rare_mean - basis.T @ (basis @ rare_mean)).norm() / rare_mean.norm()) < 1e-5
    residual = inputs[3:] - (inputs[3:] @ basis.T) @ basis
    assert float(residual.norm() / inputs[3:].norm()) < 1e-2


def test_batched_frames_equal_one_frame_at_a_time():
    config = AdapterConfig(fast_subspace=False, steps=150)
    queries_list, memory = [], None
    for seed in (1, 2, 3):
        q, memory_seed = build_scenario(SyntheticScenario(**{**SMALL, "seed": 5}))
        memory = memory_seed if memory is None else memory
        generator = torch.Generator().manual_seed(seed)
        queries_list.append(torch.nn.functional.normalize(q[: 40 + 20 * seed] + 0.05 * torch.randn(
            40 + 20 * seed, q.shape[1], generator=generator), dim=1))
    adapter = TestTimeAdapter(config)
    batched = adapter.predict_many(queries_list, memory)
    for q, got in zip(queries_list, batched):
        torch.testing.assert_close(got, adapter.predict(q, memory), atol=1e-5, rtol=0)
    _, problem = adapter.build_problem(queries_list[0], memory)
    (weight, bias), = solve_fast_batched([problem], config)
    w_ref, b_ref = solve_fast(problem, config)
    torch.testing.assert_close(weight, w_ref, atol=1e-5, rtol=0)


def test_lbfgs_option_lowers_the_objective_and_gives_probabilities():
    queries, memory = build_scenario(SyntheticScenario(**SMALL))
    config = AdapterConfig(solver="lbfgs", lbfgs_iterations=30)
    queries, problem = TestTimeAdapter(config).build_problem(queries, memory)
    w0, b0 = initial_parameters(problem.num_classes, problem.features.shape[1], config)
    weight, bias = solve_lbfgs(problem, config)
    start = plain_loss(problem.features @ w0.T + b0, problem)
    assert float(plain_loss(problem.features @ weight.T + bias, problem)) < 0.5 * float(start)
    probs = TestTimeAdapter(config).predict(queries, memory)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(queries)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_fast_on_cuda_matches_plain_on_cpu(cuda_graphs):
    spec = SyntheticScenario(num_classes=20, dim=512, support_per_class=60, num_queries=800, seed=3)
    queries, memory = build_scenario(spec)
    queries, problem = TestTimeAdapter().build_problem(queries, memory)
    plain = predict_from_problem(problem, queries, AdapterConfig(solver="plain"))
    moved = problem.__class__(**{k: (v.cuda() if torch.is_tensor(v) else v)
                                 for k, v in problem.__dict__.items()})
    fast = predict_from_problem(moved, queries.cuda(), AdapterConfig(cuda_graphs=cuda_graphs)).cpu()
    same, dp = agreement(fast, plain)
    assert same >= 0.995 and dp <= 1e-3, (same, dp)


def test_fast_solver_steps_on_the_configured_cpu_threads_and_restores_the_count(monkeypatch):
    from rns_ros.core.adapter import fast

    seen = []
    real = fast._solve_fast
    monkeypatch.setattr(fast, "_solve_fast", lambda problem, config: seen.append(torch.get_num_threads())
                        or real(problem, config))
    queries, memory = build_scenario(SyntheticScenario(**SMALL))
    _, problem = TestTimeAdapter().build_problem(queries, memory)
    torch.set_num_threads(2)  # the one_torch_thread fixture restores the suite's count afterwards
    fast.solve_fast(problem, AdapterConfig(steps=5))
    fast.solve_fast(problem, AdapterConfig(steps=5, cpu_threads=0))
    assert seen == [1, 2] and torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="cpu_threads"):
        AdapterConfig(cpu_threads=-1)
