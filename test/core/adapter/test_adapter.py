"""TestTimeAdapter and the plain reference loop: configuration, start, loss terms, optimiser step,
predict() glue and refusals. Math checked against hand-written loops, not against the code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.test_time import TestTimeAdapter
from rns_ros.core.adapter.plain import initial_parameters, plain_loss, solve_plain
from rns_ros.core.adapter.problem import PSEUDO
from rns_ros.core.adapter.synthetic import SyntheticScenario, build_scenario
from rns_ros.core.adapter.fast import _FastState, solve_fast
from rns_ros.core.memory.support import SupportMemory

SMALL = SyntheticScenario(num_classes=6, dim=32, support_per_class=8, num_queries=80,
                          classes_in_image=4, visual_fraction=0.67, text_fraction=1.0, seed=1)


# Small problems: one thread is fastest and immune to a busy shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small():
    queries, memory = build_scenario(SMALL)
    _, problem = TestTimeAdapter().build_problem(queries, memory)
    assert problem.count(PSEUDO) > 0, "the small scenario must exercise all three sample kinds"
    return queries, memory, problem


@pytest.mark.parametrize("field,value", [
    ("steps", 0), ("lr", 0.0), ("lr", float("nan")), ("weight_decay", -1.0), ("optimizer", "sgd"),
    ("k", 0), ("tau", 0.0), ("beta_fused", -0.5), ("lambdas", ()), ("lambdas", (1.2,)),
    ("zero_shot_scale", 0.0), ("retrieval", "far"), ("init", "normal"), ("seed", -1),
    ("solver", "magic"), ("fast_extra_rank", -1), ("fast_refresh_travel", 0.0), ("betas", (0.9, 1.0)),
    ("fast_kernel", "gpu"),
])
def test_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AdapterConfig(**{field: value})


def test_config_defaults_are_the_reference_implementation():
    c = AdapterConfig()
    assert (c.steps, c.lr, c.weight_decay, c.optimizer, c.k, c.tau, c.beta_fused, c.beta_pseudo) == \
        (700, 0.002, 5e-4, "adamw", 4, 0.1, 1.5, 0.2)
    assert c.lambdas == (0.9, 0.8, 0.6, 0.4, 0.2, 0.0) and c.zero_shot_scale == 100.0
    with pytest.raises(Exception):
        c.steps = 10  # frozen


def test_kaiming_start_is_seeded_uniform_with_relu_gain_and_zero_bias():
    w0, b0 = initial_parameters(20, 512, AdapterConfig(seed=0))
    w0_again, _ = initial_parameters(20, 512, AdapterConfig(seed=0))
    w1, _ = initial_parameters(20, 512, AdapterConfig(seed=1))
    bound = math.sqrt(6 / 512)  # kaiming_uniform_(fan_in, relu): gain sqrt(2) * sqrt(3 / fan_in)
    assert float(w0.abs().max()) <= bound and float(w0.abs().max()) > 0.95 * bound
    assert abs(float(w0.std()) - bound / math.sqrt(3)) < 0.05 * bound  # std of U(-a, a) = a / sqrt(3)
    assert torch.equal(w0, w0_again) and not torch.equal(w0, w1)
    assert torch.equal(b0, torch.zeros(20))
    wz, bz = initial_parameters(20, 512, AdapterConfig(init="zeros", seed=5))
    assert not wz.any() and not bz.any()


def hand_loss(logits: np.ndarray, problem) -> float:
    """Section 4.5 written out per sample: mean over rows of beta w CE / beta w KL."""
    total = 0.0
    for i in range(problem.num_rows):
        z = logits[i].astype(np.float64)
        log_p = z - (np.max(z) + math.log(np.sum(np.exp(z - np.max(z)))))
        y = problem.targets[i].double().numpy()
        if int(problem.kinds[i]) == PSEUDO:
            row = sum(y_c * (math.log(y_c) - lp) for y_c, lp in zip(y, log_p) if y_c > 0)
        else:
            row = -log_p[int(problem.labels[i])]
        total += float(problem.betas[i]) * float(problem.weights[i]) * row
    return total / problem.num_rows


def test_plain_loss_equals_a_hand_written_loop_over_samples(small):
    _, _, problem = small
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(problem.num_rows, problem.num_classes, generator=generator)
    assert float(plain_loss(logits, problem)) == pytest.approx(hand_loss(logits.numpy(), problem), rel=1e-5)


def test_analytic_gradient_of_the_fast_solver_equals_autograd(small):
    _, _, problem = small
    config = AdapterConfig()
    state = _FastState(problem, config)
    torch.mm(state.params, state.inputs_t, out=state.logits)
    state.residual_from_logits()
    analytic = state.residual @ state.inputs
    dim = problem.features.shape[1]
    weight, bias = (t.clone().requires_grad_() for t in initial_parameters(problem.num_classes, dim, config))
    plain_loss(problem.features @ weight.T + bias, problem).backward()
    torch.testing.assert_close(analytic[:, :dim], weight.grad, rtol=1e-4, atol=1e-12)
    torch.testing.assert_close(analytic[:, dim], bias.grad, rtol=1e-4, atol=1e-12)
    assert not analytic[:, dim + 1:].any()  # padding columns get no gradient


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
@pytest.mark.parametrize("solver", [solve_plain, solve_fast])
def test_first_step_is_the_textbook_adam_step(small, optimizer, solver):
    """After one step m_hat = g and v_hat = g^2, so the update is lr g / (|g| + eps)."""
    _, _, problem = small
    config = AdapterConfig(steps=1, optimizer=optimizer, lr=0.01, weight_decay=0.1, fast_subspace=False)
    dim = problem.features.shape[1]
    w0, b0 = initial_parameters(problem.num_classes, dim, config)
    weight, bias = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    plain_loss(problem.features @ weight.T + bias, problem).backward()
    expected = []
    for p0, g in ((w0, weight.grad), (b0, bias.grad)):
        if optimizer == "adamw":  # decoupled decay, then the Adam step
            expected.append(p0 * (1 - 0.01 * 0.1) - 0.01 * g / (g.abs() + 1e-8))
        else:  # L2 decay enters the gradient
            g = g + 0.1 * p0
            expected.append(p0 - 0.01 * g / (g.abs() + 1e-8))
    got = solver(problem, config)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-6)


def test_predict_rows_sum_to_one_and_columns_follow_class_ids():
    rng = np.random.default_rng(0)
    memory = SupportMemory(16)
    texts = torch.nn.functional.normalize(torch.tensor(rng.standard_normal((4, 16)), dtype=torch.float32), dim=1)
    ids = [memory.add_class(f"c{i}", text_feature=texts[i]) for i in range(4)]
    memory.remove_class(ids[1])  # ids 1, 3, 4 remain: columns 0, 1, 2
    for cid in (1, 3, 4):
        centre = torch.nn.functional.normalize(torch.tensor(rng.standard_normal(16), dtype=torch.float32), dim=0)
        memory.add_image_features(torch.nn.functional.normalize(centre + 0.1 * torch.randn(3, 16), dim=1), [cid] * 3)
    bank, bank_ids = memory.bank()
    probs = TestTimeAdapter(AdapterConfig(steps=300, use_text=False)).predict(bank, memory)
    assert probs.shape == (bank.shape[0], 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(bank.shape[0]))
    column_of = {cid: col for col, cid in enumerate(memory.class_ids)}
    assert probs.argmax(1).tolist() == [column_of[int(c)] for c in bank_ids]


@pytest.mark.parametrize("solver", ["plain", "fast"])
def test_predict_is_deterministic_for_a_fixed_seed(small, solver):
    queries, memory, _ = small
    adapter = TestTimeAdapter(AdapterConfig(solver=solver, seed=3, steps=100))
    assert torch.equal(adapter.predict(queries, memory), adapter.predict(queries, memory))


def test_zeros_start_involves_no_random_number(small):
    queries, memory, _ = small
    run = lambda **kw: TestTimeAdapter(AdapterConfig(steps=100, **kw)).predict(queries, memory)  # noqa: E731
    assert torch.equal(run(init="zeros", seed=0, solver="plain"), run(init="zeros", seed=7, solver="plain"))
    assert torch.equal(run(init="zeros", seed=0), run(init="zeros", seed=7))  # fast solver too
    c, d = run(seed=0, solver="plain"), run(seed=7, solver="plain")
    assert not torch.equal(c, d)  # the reference depends on its random start


def test_memory_without_visual_support_gives_zero_shot():
    rng = np.random.default_rng(1)
    memory = SupportMemory(16)
    texts = torch.nn.functional.normalize(torch.tensor(rng.standard_normal((3, 16)), dtype=torch.float32), dim=1)
    for i in range(3):
        memory.add_class(f"c{i}", text_feature=texts[i])
    queries = torch.nn.functional.normalize(torch.tensor(rng.standard_normal((5, 16)), dtype=torch.float32), dim=1)
    probs = TestTimeAdapter().predict(queries, memory)
    for q, row in zip(queries.double().numpy(), probs.numpy()):
        z = 100.0 * (texts.double().numpy() @ q)
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(row, expected, atol=1e-5)
    nameless = SupportMemory(16)
    nameless.add_class(None)
    nameless.add_class(None)
    torch.testing.assert_close(TestTimeAdapter().predict(queries, nameless), torch.full((5, 2), 0.5))


def test_empty_memory_and_empty_queries():
    memory = SupportMemory(16)
    assert TestTimeAdapter().predict(torch.zeros(7, 16), memory).shape == (7, 0)
    with pytest.raises(ValueError, match="NaN"):
        TestTimeAdapter().predict(torch.full((2, 16), float("nan")), memory)
    with pytest.raises(ValueError, match="shape"):
        TestTimeAdapter().predict(torch.zeros(2, 15), memory)
    _, memory = build_scenario(SMALL)
    assert TestTimeAdapter().predict(torch.zeros(0, SMALL.dim), memory).shape == (0, SMALL.num_classes)


@pytest.mark.parametrize("bad,match", [
    (lambda q: q[:, :-1], "shape"),
    (lambda q: q[0], "shape"),
    (lambda q: torch.where(torch.arange(q.shape[1]) == 3, float("nan"), q), "NaN"),
    (lambda q: q * float("inf"), "NaN"),
    (lambda q: (q > 0).to(torch.int64), "floating"),
])
def test_bad_queries_are_refused_and_change_nothing(small, bad, match):
    queries, memory, _ = small
    version = memory.version
    with pytest.raises(ValueError, match=match):
        TestTimeAdapter().predict(bad(queries), memory)
    assert memory.version == version


def test_config_type_is_checked():
    with pytest.raises(ValueError, match="AdapterConfig"):
        TestTimeAdapter({"steps": 3})
