"""The fast solver: the plain loop's objective, optimiser, start and step count, executed as a
fixed-shape step with analytic gradients (issue 6, item 1). `AdapterConfig(solver="fast")`, the
default.

What is restructured (the math is that of `adapter.solve_plain`):
- Everything constant is built once: the training rows get a ones column (the bias becomes column d
  of one parameter matrix P = [W | b]) and zero columns up to a multiple of 8; the per-row factor
  a_i = beta_i w_i / M (beta, L1-normalised relevance weight and the loss mean folded together).
  Zero columns stay exactly zero (zero gradient, zero moments, zero update).
- The loss gradient is closed-form: for a row with target y (one-hot, or soft with sum s_y),
  d/dz [CE or KL(y || softmax z)] = s_y softmax(z) - y, so dL/dP = R^T X with
  R = softmax(X P^T) * (a s_y) - a y. Logits are kept class-major (C, M) so the softmax runs along
  the long axis. One fused AdamW kernel (`torch._fused_adamw_`, torch.optim's fused=True kernel)
  updates P and its moments. Buffers are preallocated; nothing is read back to the host.

Two step kinds:
- exact (the default, `fast_subspace=False`; always on CUDA): two full (C, M, d) matmuls per step.
  Agrees with the plain loop to float rounding. On CUDA the steps run in `graphed_steps.py`: fixed
  buffers per problem shape, 50 steps per captured CUDA graph, replayed (`cuda_graphs`; a failed
  capture falls back to eager steps, warned once and reported by `describe_execution`). On a CPU
  the softmax and residual between the matmuls (torch's softmax along the class axis costs about
  as much as a matmul here) run in one pass of the compiled kernel (`native.py`) where it builds.
- subspace (opt-in approximation, `fast_subspace=True`, CPU only): on a CPU the two full matmuls
  stay in any exact restructuring (BLAS calls no hand-written kernel would beat) and cap it at a
  few times the plain loop's speed, so the per-step matmuls use a small orthonormal
  basis B of the training rows, X = A B + E: one direction per class label (the loss-weighted mean
  of that label's rows, so that a class learnt from a handful of fused or pseudo rows is
  represented exactly enough) plus `fast_extra_rank` top directions of what remains (randomised
  range finder, fixed seed). Every K = round(fast_refresh_travel / lr) steps (100 at the default lr; an
  Adam step moves a weight by about lr at most, so K bounds how far the weights travel between
  refreshes) the residual terms E P^T (logits) and R^T E (gradient) are computed exactly and held
  until the next refresh; in between, logits = A (B P^T) + held and gradient = (R^T A) B + held.
  Adam still runs on every coordinate of P at every step. Only the change of the residual terms
  between two refreshes is neglected; on hard problems (noisy features, partial support) the argmax
  then differs from the plain loop's on up to about 1% of the queries (docs/adapter.md), which is why it
  is not the default.
  A subspace step is a handful of operations on a few thousand numbers each: as torch calls, the
  per-call dispatch costs more than the arithmetic. So whole steps run in one call of a compiled
  C kernel (`native.py`, native/subspace_steps.c: the same formulas, torch's Adam(W) update),
  built on first use where a C compiler exists; the refreshes stay torch matmuls.
  `fast_kernel="torch"` (and "auto" without a compiler) runs the same steps as torch operations.

Threads: on a CPU the steps run on `config.cpu_threads` torch threads (1 by default). On two idle
cores a second thread makes the exact steps ~1.3x faster (issue 25: 88 vs 120 ms on the hard
benchmark problem), but every parallel region is a barrier: where other processes compete for
the cores, 2 threads made the 700 exact steps several times slower (12 s instead of 0.3 s with
spinning OpenMP threads). Hence 1 by default, 2 (the `adapter.cpu_threads` parameter) on a robot
with cores to spare. torch's thread count is process-wide, so it is set for the solve and
restored after it.
"""
from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from rns_ros.core.adapter import graphed_steps, native
from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.graphed_steps import augmented_width
from rns_ros.core.adapter.plain import initial_parameters
from rns_ros.core.adapter.problem import TrainingProblem

_OVERSAMPLE = 8  # extra random directions of the range finder (standard randomised-SVD practice)
# The range finder's probe is fixed, not config.seed: the basis is an execution detail, and a
# start without randomness (init="zeros") must give the same result whatever the seed.
_RANGE_FINDER_SEED = 0


class _FastState:
    """Preallocated tensors of one solve on a CPU: constants, parameters, moments, step buffers."""

    def __init__(self, problem: TrainingProblem, config: AdapterConfig):
        features = problem.features
        rows, dim = features.shape
        device, dtype = features.device, features.dtype
        width = augmented_width(dim)
        self.dim, self.config = dim, config
        self.inputs = torch.zeros(rows, width, dtype=dtype, device=device)  # X = [features | 1 | 0]
        self.inputs[:, :dim] = features
        self.inputs[:, dim] = 1.0
        self.inputs_t = self.inputs.T.contiguous()  # (width, M)
        factor = (problem.loss_weights / rows)[None, :]  # a_i: betas, weights and the mean
        self.prob_scale = (factor * problem.targets.sum(dim=1)[None, :]).contiguous()  # (1, M) a s_y
        self.neg_target = (-factor * problem.targets.T).contiguous()  # (C, M) -a y
        weight, bias = initial_parameters(problem.num_classes, dim, config, device=device)
        self.params = torch.zeros(problem.num_classes, width, dtype=dtype, device=device)
        self.params[:, :dim] = weight
        self.params[:, dim] = bias
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        self.grad = torch.zeros_like(self.params)
        self.logits = torch.zeros(problem.num_classes, rows, dtype=dtype, device=device)  # class-major
        self.residual = torch.zeros_like(self.logits)
        self.fused_kernel = torch._fused_adamw_ if config.optimizer == "adamw" else torch._fused_adam_
        self.hyper = dict(lr=config.lr, beta1=config.betas[0], beta2=config.betas[1],
                          weight_decay=config.weight_decay, eps=config.eps, amsgrad=False,
                          maximize=False)

    def residual_from_logits(self) -> None:
        """residual = a s_y softmax(logits) - a y, class-major (C, M)."""
        torch.addcmul(self.neg_target, torch.softmax(self.logits, dim=0), self.prob_scale,
                      out=self.residual)

    @functools.cached_property
    def step_numbers(self) -> tuple[torch.Tensor, ...]:
        """1, 2, ..., steps as 0-d tensors, built on first use (the compiled subspace steps never
        use them): the fused kernel reads the step number from a tensor, and taking a prepared one
        costs nothing per step (an increment is an extra op)."""
        return torch.arange(1, self.config.steps + 1, dtype=torch.float32, device=self.params.device).unbind()

    def adam_update(self, step: int) -> None:
        """AdamW (or Adam) step number step + 1."""
        self.fused_kernel([self.params], [self.grad], [self.exp_avg], [self.exp_avg_sq], [],
                          [self.step_numbers[step]], **self.hyper)

    def exact_step(self, step: int) -> None:
        """One full-batch optimiser step with full-rank matmuls, in place."""
        torch.mm(self.params, self.inputs_t, out=self.logits)
        self.residual_from_logits()
        torch.mm(self.residual, self.inputs, out=self.grad)
        self.adam_update(step)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.params[:, : self.dim].clone(), self.params[:, self.dim].clone()


def subspace_basis(inputs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                   extra_rank: int, seed: int) -> torch.Tensor:
    """(R, width) orthonormal rows: the span of the per-label weighted means of the rows of
    `inputs` (M, width) (labels (M,), weights (M,)), plus the `extra_rank` top right-singular
    directions of what the means leave (randomised range finder, one power iteration, seeded).
    R = number of distinct labels + extra_rank (at most width)."""
    _, groups = torch.unique(labels, return_inverse=True)
    means = inputs.new_zeros(int(groups.max()) + 1, inputs.shape[1])
    means.index_add_(0, groups, inputs * weights[:, None])
    basis, _ = torch.linalg.qr(means.T)  # (width, labels)
    if extra_rank > 0:
        rest = inputs - (inputs @ basis) @ basis.T
        generator = torch.Generator().manual_seed(seed)
        probe = torch.randn(rest.shape[0], extra_rank + _OVERSAMPLE, generator=generator).to(rest)
        sketch, _ = torch.linalg.qr(rest.T @ (rest @ (rest.T @ probe)))  # (width, extra + oversample)
        _, _, vh = torch.linalg.svd(rest @ sketch, full_matrices=False)
        top = (vh[:extra_rank] @ sketch.T).T
        basis, _ = torch.linalg.qr(torch.cat([basis, top], dim=1))
    return basis.T.contiguous()


class _Subspace:
    """The subspace split of one problem's rows: X = A B + E (see the module docstring)."""

    def __init__(self, state: _FastState, problem: TrainingProblem):
        self.basis = subspace_basis(state.inputs, problem.labels, problem.loss_weights,
                                    state.config.fast_extra_rank, _RANGE_FINDER_SEED)  # B (R, width)
        self.coords = (state.inputs @ self.basis.T).contiguous()  # A (M, R)
        self.remainder = (state.inputs - self.coords @ self.basis).contiguous()  # E (M, width)


def _run_subspace_torch(state: _FastState, split: _Subspace, steps: int, refresh: int) -> None:
    """`steps` subspace steps as torch operations, exact residual terms refreshed every `refresh`."""
    basis, coords, remainder = split.basis, split.coords, split.remainder
    basis_t, coords_t, remainder_t = basis.T.contiguous(), coords.T.contiguous(), remainder.T.contiguous()
    held_logits = torch.zeros_like(state.logits)  # E P^T at the last refresh, class-major
    held_grad = torch.zeros_like(state.grad)  # R^T E at the last refresh
    projected = torch.zeros(state.params.shape[0], basis.shape[0], dtype=basis.dtype, device=basis.device)
    # the loop is overhead-bound (tiny kernels): names are bound locally, the step is written out
    mm, addmm, addcmul, softmax = torch.mm, torch.addmm, torch.addcmul, torch.softmax
    params, logits, residual, grad = state.params, state.logits, state.residual, state.grad
    neg_target, prob_scale = state.neg_target, state.prob_scale
    kernel, hyper, numbers = state.fused_kernel, state.hyper, state.step_numbers
    adam_tensors = ([params], [grad], [state.exp_avg], [state.exp_avg_sq], [])
    for block in range(0, steps, refresh):
        mm(params, remainder_t, out=held_logits)  # exact refresh of the residual logits
        for step in range(block, min(block + refresh, steps)):
            mm(params, basis_t, out=projected)
            addmm(held_logits, projected, coords_t, out=logits)
            addcmul(neg_target, softmax(logits, dim=0), prob_scale, out=residual)
            if step == block:
                mm(residual, remainder, out=held_grad)  # exact refresh of the residual gradient
            mm(residual, coords, out=projected)
            addmm(held_grad, projected, basis, out=grad)
            kernel(*adam_tensors, [numbers[step]], **hyper)


def _pad_rows(matrix: torch.Tensor, padded: int) -> torch.Tensor:
    """(rows, k) -> (padded, k), the added rows zero: the kernel's rows come in multiples of its
    vector width, and zero rows with zero factors add nothing to the gradient."""
    out = matrix.new_zeros(padded, matrix.shape[1])
    out[:matrix.shape[0]] = matrix
    return out


def _run_subspace_native(state: _FastState, split: _Subspace, steps: int, refresh: int,
                         kernel: native.NativeKernel) -> None:
    """The same steps as `_run_subspace_torch`, each run by the compiled kernel in one call; the
    refreshes stay torch matmuls. Rows are padded to the kernel's vector width with zero factors
    (their residual is exactly zero)."""
    classes, width = state.params.shape
    rows, rank = split.coords.shape
    padded = -(-rows // native.LANES) * native.LANES

    remainder = _pad_rows(split.remainder, padded)
    remainder_t = remainder.T.contiguous()
    tensors = dict(
        params=state.params, exp_avg=state.exp_avg, exp_avg_sq=state.exp_avg_sq, basis=split.basis,
        coords_t=_pad_rows(split.coords, padded).T.contiguous(),
        held_logits=state.logits.new_zeros(classes, padded), held_grad=torch.zeros_like(state.grad),
        neg_target=_pad_rows(state.neg_target.T, padded).T.contiguous(),
        prob_scale=_pad_rows(state.prob_scale.T, padded).reshape(-1).contiguous(),
        residual=state.logits.new_zeros(classes, padded),
        projected=state.params.new_zeros(classes, rank), coord_grad=state.params.new_zeros(classes, rank),
        scratch=state.params.new_zeros(max(classes * width, 2 * padded)))
    config = state.config
    problem = native.subspace_problem(tensors, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
                                      eps=config.eps, decoupled=config.optimizer == "adamw")
    held_logits, held_grad, residual = tensors["held_logits"], tensors["held_grad"], tensors["residual"]
    kernel.project(problem)
    for block in range(0, steps, refresh):
        torch.mm(state.params, remainder_t, out=held_logits)  # exact refresh of the residual logits
        kernel.row_pass(problem)
        torch.mm(residual, remainder, out=held_grad)  # exact refresh of the residual gradient
        kernel.width_pass(problem, block + 1)
        kernel.steps(problem, block + 2, min(refresh, steps - block) - 1)


def _kernel_or_reason(config: AdapterConfig) -> tuple[native.NativeKernel | None, str | None]:
    """Per config.fast_kernel: "torch" -> (None, None); otherwise (the compiled kernel, None), or,
    when it cannot be had, NativeUnavailable for "native" and (None, why) for "auto"."""
    if config.fast_kernel == "torch":
        return None, None
    try:
        return native.load(), None
    except native.NativeUnavailable as error:
        if config.fast_kernel == "native":
            raise
        return None, str(error)


def native_kernel(config: AdapterConfig) -> native.NativeKernel | None:
    """The compiled kernel per config.fast_kernel (`_kernel_or_reason`); the "auto" fallback to
    torch operations is announced with one warning per process."""
    kernel, reason = _kernel_or_reason(config)
    global _warned_unavailable
    if reason is not None and not _warned_unavailable:
        _warned_unavailable = True
        warnings.warn(f"fast adapter: the compiled CPU kernel is unavailable, using torch operations "
                      f"(slower, same results): {reason}", RuntimeWarning, stacklevel=3)
    return kernel


_warned_unavailable = False


def describe_execution(config: AdapterConfig, device: str) -> tuple[str, str | None]:
    """What runs the adapter's steps for `config` on `device` ("cpu", "cuda", "cuda:N"), and a
    warning when it is a slower fallback. On a CPU this builds (or finds) the compiled kernel now,
    so that a node pays for it at start-up rather than on its first frame. On CUDA it is what ran
    in this process so far (`graphed_steps.execution_record`): graphs captured and replayed, or
    the eager fallback after a failed capture; ask again after a frame to know."""
    if config.solver != "fast":
        return f"solver {config.solver}", None
    if device.startswith("cuda"):
        if not config.cuda_graphs:
            return "exact steps on CUDA, eager (cuda_graphs=False)", None
        record = graphed_steps.execution_record()
        if record.capture_failure is not None:
            return (f"exact steps on CUDA, {record.path()}",
                    f"the adapter's steps could not be captured as CUDA graphs, so they run eagerly, about 5x "
                    f"slower: {record.capture_failure}")
        return f"exact steps on CUDA as {record.path()}", None
    kind = "subspace steps (approximate)" if config.fast_subspace else "exact steps"
    kernel, reason = _kernel_or_reason(config)
    if kernel is not None:
        where = "in" if config.fast_subspace else "with the softmax in"
        return f"{kind} {where} the compiled kernel {kernel.path}", None
    slower = "about 2x" if config.fast_subspace else "about 1.2x"
    warning = None if reason is None else (
        f"the adapter's compiled CPU kernel is unavailable, so it runs {slower} slower: {reason}")
    return f"{kind} as torch operations", warning


def refresh_interval(config: AdapterConfig) -> int:
    """Steps between exact refreshes of the subspace path: fast_refresh_travel / lr, at least 1."""
    return max(1, round(config.fast_refresh_travel / config.lr))


def subspace_rank(problem: TrainingProblem, config: AdapterConfig) -> int:
    """The rank of the subspace steps for `problem`, or 0 for exact steps: exact when disabled, on
    CUDA, and wherever subspace steps would not save at least half of the full-rank arithmetic."""
    rows, dim = problem.features.shape
    if not config.fast_subspace or problem.features.is_cuda or rows == 0:
        return 0
    width = augmented_width(dim)
    rank = min(int(torch.unique(problem.labels).numel()) + config.fast_extra_rank, width)
    return rank if 2 * rank * (rows + width) <= rows * width else 0


def _run_exact_native(state: _FastState, steps: int, kernel: native.NativeKernel) -> None:
    """`steps` exact steps: the two matmuls as torch (BLAS) calls, the softmax and residual between
    them in one call of the compiled kernel. Rows are padded to the kernel's vector width with zero
    rows and zero factors (their residual is exactly zero, so they add nothing to the gradient)."""
    padded = -(-state.inputs.shape[0] // native.LANES) * native.LANES
    inputs = _pad_rows(state.inputs, padded)
    inputs_t = inputs.T.contiguous()
    neg_target = _pad_rows(state.neg_target.T, padded).T.contiguous()
    prob_scale = _pad_rows(state.prob_scale.T, padded).reshape(-1).contiguous()
    logits = state.logits.new_zeros(state.logits.shape[0], padded)  # becomes the residual in place
    residual_in_place = kernel.softmax_residual_call(logits, prob_scale, neg_target)
    params, grad, mm = state.params, state.grad, torch.mm
    for step in range(steps):
        mm(params, inputs_t, out=logits)
        residual_in_place()
        mm(logits, inputs, out=grad)
        state.adam_update(step)


@contextlib.contextmanager
def cpu_threads(count: int):
    """torch's CPU thread count set to `count` for the block (0 or the current count: untouched),
    restored after it. Process-wide: other threads' CPU work runs with it meanwhile."""
    before = torch.get_num_threads()
    if count <= 0 or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def solve_fast(problem: TrainingProblem, config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the classifier of `problem` (mode "train"); returns (W (C, d), b (C,))."""
    if problem.features.is_cuda:
        return _solve_fast(problem, config)
    with cpu_threads(config.cpu_threads):
        return _solve_fast(problem, config)


def _solve_fast(problem: TrainingProblem, config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    if problem.features.is_cuda:
        return graphed_steps.solve_graphed([problem], config)[0]
    state = _FastState(problem, config)
    kernel = native_kernel(config) if state.inputs.dtype == torch.float32 else None
    if subspace_rank(problem, config) > 0:
        split = _Subspace(state, problem)
        if kernel is not None:
            _run_subspace_native(state, split, config.steps, refresh_interval(config), kernel)
        else:
            _run_subspace_torch(state, split, config.steps, refresh_interval(config))
    elif kernel is not None:
        _run_exact_native(state, config.steps, kernel)
    else:
        for step in range(config.steps):
            state.exact_step(step)
    return state.result()
