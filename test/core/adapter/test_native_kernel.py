"""The compiled CPU kernel of the fast adapter (rns_ros/core/adapter/native.py,
native/subspace_steps.c): each pass of the subspace steps and the exact steps' softmax residual
against the same formulas computed independently with torch (softmax, matmuls, torch.optim's own
AdamW/Adam step), odd sizes that hit every tail of the blocked loops, extreme logits; whole solves
(exact and subspace steps) against the torch-operations path; and the build: cache reuse, no
compiler, compile errors, refusal of tensors the C code cannot take."""
from __future__ import annotations

import os

import pytest
import torch

from rns_ros.core.adapter import fast as fast_adapter, native
from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.test_time import TestTimeAdapter
from rns_ros.core.adapter.synthetic import SyntheticScenario, build_scenario
from rns_ros.core.adapter.fast import solve_fast

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(native.find_compiler() is None, reason="needs a C compiler ($CC, cc, gcc, clang)")]


@pytest.fixture
def fresh_native(tmp_path, monkeypatch):
    """A private cache folder and a process that has not loaded the kernel yet."""
    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fast_adapter, "_warned_unavailable", False)  # the once-per-process warning
    native.reset_for_tests()
    yield tmp_path / "cache"
    native.reset_for_tests()


def random_problem(classes, rank, rows, width, seed=0, logit_scale=1.0):
    """Tensors of a kernel problem: rows and width already multiples of 8, the last 3 rows padding
    (zero factors and coordinates, as fast_adapter pads them)."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(width, rank, generator=g))
    coords_t = torch.randn(rank, rows, generator=g) * logit_scale
    prob_scale = 0.5 + torch.rand(rows, generator=g)  # O(1) residuals: tolerances stay meaningful
    neg_target = -torch.rand(classes, rows, generator=g) * prob_scale
    coords_t[:, -3:], prob_scale[-3:], neg_target[:, -3:] = 0, 0, 0
    return dict(
        params=0.1 * torch.randn(classes, width, generator=g), exp_avg=0.01 * torch.randn(classes, width, generator=g),
        exp_avg_sq=0.01 * torch.rand(classes, width, generator=g), basis=basis.T.contiguous(), coords_t=coords_t,
        held_logits=torch.randn(classes, rows, generator=g) * logit_scale, held_grad=0.01 * torch.randn(classes, width, generator=g),
        neg_target=neg_target, prob_scale=prob_scale, residual=torch.zeros(classes, rows),
        projected=0.25 * torch.randn(classes, rank, generator=g), coord_grad=torch.zeros(classes, rank),
        scratch=torch.zeros(max(classes * width, 2 * rows)))


def kernel_view(tensors, **hyper):
    hyper = {**dict(lr=0.002, betas=(0.9, 0.999), weight_decay=5e-4, eps=1e-8, decoupled=True), **hyper}
    return native.subspace_problem(tensors, **hyper)


# classes x rank x rows x width: every tail of the 4-class / 16-column / 2 x 4 dot blocks
SIZES = [(20, 16, 512, 520), (7, 5, 24, 16), (1, 1, 8, 8), (6, 3, 40, 24), (13, 9, 16, 40)]


@pytest.mark.parametrize("classes,rank,rows,width", SIZES)
def test_row_pass_is_softmax_residual_and_its_projection(classes, rank, rows, width):
    t = random_problem(classes, rank, rows, width, seed=classes)
    native.load().row_pass(kernel_view(t))
    d = {name: tensor.double() for name, tensor in t.items()}
    residual = torch.softmax(d["held_logits"] + d["projected"] @ d["coords_t"], dim=0) * d["prob_scale"] + d["neg_target"]
    torch.testing.assert_close(t["residual"].double(), residual, atol=3e-7, rtol=2e-6)
    assert bool((t["residual"][:, -3:] == 0).all())  # padding rows contribute exactly nothing
    torch.testing.assert_close(t["coord_grad"].double(), residual @ t["coords_t"].double().T, atol=1e-5, rtol=2e-6)


def test_row_pass_softmax_survives_extreme_logits():
    t = random_problem(9, 4, 32, 16, seed=3, logit_scale=300.0)  # logits spread over hundreds
    t["held_logits"][:, 5] = torch.linspace(-1e4, 0, 9)  # exp underflows for all but one class
    native.load().row_pass(kernel_view(t))
    d = {name: tensor.double() for name, tensor in t.items()}
    residual = torch.softmax(d["held_logits"] + d["projected"] @ d["coords_t"], dim=0) * d["prob_scale"] + d["neg_target"]
    assert bool(torch.isfinite(t["residual"]).all())
    torch.testing.assert_close(t["residual"].double(), residual, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("classes,rows", [(20, 576), (7, 24), (1, 8), (13, 16)])
def test_exact_steps_softmax_residual_is_torch_softmax_times_scale_plus_target(classes, rows):
    t = random_problem(classes, 1, rows, 8, seed=classes, logit_scale=30.0)
    logits = t["held_logits"]
    logits[:, 1] = torch.linspace(-1e4, 0, classes)  # exp underflows for all but one class
    expected = torch.softmax(logits.double(), dim=0) * t["prob_scale"].double() + t["neg_target"].double()
    native.load().softmax_residual_call(logits, t["prob_scale"], t["neg_target"])()
    torch.testing.assert_close(logits.double(), expected, atol=3e-7, rtol=2e-6)
    assert bool((logits[:, -3:] == 0).all())  # padding rows (zero factors) contribute exactly nothing


def test_the_softmax_residual_refuses_what_the_kernel_cannot_take():
    kernel, good = native.load(), random_problem(6, 1, 40, 8)
    logits, prob_scale, neg_target = good["held_logits"], good["prob_scale"], good["neg_target"]
    for bad, match in [((logits.double(), prob_scale, neg_target), "logits"),
                       ((logits, prob_scale[:32], neg_target), "prob_scale"),
                       ((logits, prob_scale, neg_target.T.contiguous().T), "neg_target"),
                       ((logits[:, :36].contiguous(), prob_scale[:36], neg_target[:, :36].contiguous()), "multiple")]:
        with pytest.raises(ValueError, match=match):
            kernel.softmax_residual_call(*bad)


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
@pytest.mark.parametrize("classes,rank,rows,width", SIZES[:3])
def test_width_pass_is_torch_optimizer_step_then_projection(optimizer, classes, rank, rows, width):
    t = random_problem(classes, rank, rows, width, seed=rank)
    t["coord_grad"] = torch.randn(classes, rank, generator=torch.Generator().manual_seed(1)) * 1e-2
    step = 7  # bias corrections of a later step: start the optimiser's state at step 6
    param = torch.nn.Parameter(t["params"].clone())
    optimizer_class = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    reference = optimizer_class([param], lr=0.002, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4, foreach=False)
    reference.state[param] = dict(step=torch.tensor(float(step - 1)), exp_avg=t["exp_avg"].clone(),
                                  exp_avg_sq=t["exp_avg_sq"].clone())
    param.grad = t["held_grad"] + t["coord_grad"] @ t["basis"]
    reference.step()
    native.load().width_pass(kernel_view(t, decoupled=optimizer == "adamw"), step)
    torch.testing.assert_close(t["params"], param.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(t["exp_avg"], reference.state[param]["exp_avg"], atol=1e-8, rtol=1e-5)
    torch.testing.assert_close(t["exp_avg_sq"], reference.state[param]["exp_avg_sq"], atol=1e-10, rtol=1e-5)
    torch.testing.assert_close(t["projected"], param.detach() @ t["basis"].T, atol=1e-5, rtol=1e-5)


def test_steps_equal_row_then_width_passes():
    a, b = random_problem(6, 3, 40, 24, seed=9), random_problem(6, 3, 40, 24, seed=9)
    kernel = native.load()
    kernel.steps(kernel_view(a), 3, 4)
    view_b = kernel_view(b)
    for step in range(3, 7):
        kernel.row_pass(view_b)
        kernel.width_pass(view_b, step)
    for name in ("params", "exp_avg", "exp_avg_sq", "projected", "residual"):
        assert torch.equal(a[name], b[name]), name


def test_the_view_refuses_what_the_kernel_cannot_take():
    good = random_problem(6, 3, 40, 24)
    for name, bad in [("params", good["params"].double()), ("held_grad", good["held_grad"].T),
                      ("coords_t", torch.zeros(3, 36)), ("scratch", torch.zeros(10)),
                      ("residual", torch.zeros(6, 41))]:
        with pytest.raises(ValueError, match=name if name != "coords_t" else "multiples"):
            kernel_view({**good, name: bad})


@pytest.mark.parametrize("optimizer,lr", [("adamw", 0.002), ("adam", 0.02)])
def test_whole_solve_matches_the_torch_operations_path(optimizer, lr):
    """Same math, two executions: float rounding apart, for exact steps and for subspace steps
    whatever the refresh interval."""
    spec = SyntheticScenario(num_classes=12, dim=256, support_per_class=30, num_queries=300, seed=4)
    queries, memory = build_scenario(spec)
    _, problem = TestTimeAdapter().build_problem(queries, memory)
    assert problem.num_rows % native.LANES  # the exact path pads rows
    for subspace, travel in ((False, 0.2), (True, 0.04), (True, 0.2)):
        config = AdapterConfig(optimizer=optimizer, lr=lr, steps=250, fast_subspace=subspace,
                               fast_refresh_travel=travel)
        w_native, b_native = solve_fast(problem, AdapterConfig(**{**config.__dict__, "fast_kernel": "native"}))
        w_torch, b_torch = solve_fast(problem, AdapterConfig(**{**config.__dict__, "fast_kernel": "torch"}))
        torch.testing.assert_close(w_native, w_torch, atol=2e-5, rtol=0)
        torch.testing.assert_close(b_native, b_torch, atol=2e-5, rtol=0)


def test_build_is_cached_by_content_and_reused(fresh_native, monkeypatch):
    first = native.load()
    assert first.path.parent == fresh_native and first.path.is_file()
    assert [p.name for p in fresh_native.iterdir()] == [first.path.name]  # no temporary left
    native.reset_for_tests()

    def no_compiling(*args):
        raise AssertionError("compiled again although the cache holds this build")

    monkeypatch.setattr(native, "_build", no_compiling)
    assert native.load().path == first.path


def test_no_compiler_falls_back_to_torch_with_one_warning_or_refuses(fresh_native, monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(fresh_native))  # no cc, gcc or clang on it
    with pytest.raises(native.NativeUnavailable, match="no C compiler"):
        native.load()
    spec = SyntheticScenario(num_classes=6, dim=64, support_per_class=10, num_queries=200, seed=2)
    queries, memory = build_scenario(spec)
    _, problem = TestTimeAdapter().build_problem(queries, memory)
    config = AdapterConfig(steps=50)
    with pytest.raises(native.NativeUnavailable):
        solve_fast(problem, AdapterConfig(steps=50, fast_kernel="native"))
    with pytest.warns(RuntimeWarning, match="compiled CPU kernel is unavailable"):
        fallback = solve_fast(problem, config)
    expected = solve_fast(problem, AdapterConfig(steps=50, fast_kernel="torch"))
    assert all(torch.equal(x, y) for x, y in zip(fallback, expected))


def test_a_compile_error_is_reported_and_leaves_nothing_behind(fresh_native, monkeypatch, tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C;\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    with pytest.raises(native.NativeUnavailable, match="failed") as error:
        native.load()
    assert "broken.c" in str(error.value)
    assert not fresh_native.exists() or not any(fresh_native.iterdir())
    with pytest.raises(native.NativeUnavailable):  # remembered: no second compile in this process
        native.load()


def test_an_unwritable_cache_or_a_missing_source_is_reported(fresh_native, monkeypatch, tmp_path):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path / "a_file" / "cache"))  # a folder inside a file
    with pytest.raises(native.NativeUnavailable, match="RNS_ROS_CACHE_DIR"):
        native.load()
    native.reset_for_tests()
    monkeypatch.setattr(native, "SOURCE", tmp_path / "missing.c")
    with pytest.raises(native.NativeUnavailable, match="missing"):
        native.load()


def test_cache_dir_follows_xdg_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv("RNS_ROS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native.cache_dir() == tmp_path / "rns_ros"
    monkeypatch.setenv("RNS_ROS_CACHE_DIR", os.fspath(tmp_path / "elsewhere"))
    assert native.cache_dir() == tmp_path / "elsewhere"


def test_describe_execution_builds_the_kernel_or_says_why_not(fresh_native, monkeypatch):
    from rns_ros.core.adapter.fast import describe_execution

    text, warning = describe_execution(AdapterConfig(), "cpu")
    assert warning is None and text.startswith("exact steps") and str(fresh_native) in text  # built now
    assert "subspace" in describe_execution(AdapterConfig(fast_subspace=True), "cpu")[0]
    assert describe_execution(AdapterConfig(fast_kernel="torch"), "cpu") == ("exact steps as torch operations", None)
    assert "CUDA graph" in describe_execution(AdapterConfig(), "cuda:0")[0]
    native.reset_for_tests()
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(fresh_native))
    text, warning = describe_execution(AdapterConfig(), "cpu")
    assert text == "exact steps as torch operations" and "no C compiler" in warning
    with pytest.raises(native.NativeUnavailable):
        describe_execution(AdapterConfig(fast_kernel="native"), "cpu")
