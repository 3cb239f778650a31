"""RNS test-time training (rns-method.md section 4): the configuration, the plain reference loop,
and `TestTimeAdapter`, the entry point.

Per image: build the training problem (`adapter_problem.build_training_problem`: retrieved, fused
and pseudo rows with their weights), train a linear classifier g(x) = W x + b on it from scratch,
and return softmax(W q + b) for every query. Two solvers train the same objective:

- ``solver="plain"``: the reference loop, written like the authors' implementation (nn.Parameter,
  autograd, torch.optim.AdamW). It is the oracle every speed-up is checked against; keep it.
- ``solver="fast"`` (default): `fast_adapter.solve_fast`, the same objective, optimiser, start and
  step count with analytic gradients in preallocated buffers; exact steps on CUDA (and with
  fast_subspace=False), subspace steps with periodic exact refreshes on the CPU, run by a compiled
  kernel (`native.py`) where a C compiler exists. Its agreement with the
  plain loop is tested (test/core/test_adapter_fast.py) and benchmarked (scripts/bench_adapter.py).

The approximate speed options (fewer steps, larger lr, L-BFGS, ...) live in `adapter_options.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns_ros.core.adapter_problem import (PSEUDO, TrainingProblem, build_training_problem,
                                          zero_shot_probabilities)
from rns_ros.core.fusion import DEFAULT_LAMBDAS

OPTIMIZERS = ("adamw", "adam")
RETRIEVALS = ("nearest", "random")
INITS = ("kaiming", "zeros")
SOLVERS = ("fast", "plain", "lbfgs")
FAST_KERNELS = ("auto", "native", "torch")


@dataclass(frozen=True)
class AdapterConfig:
    """Every hyperparameter and ablation switch of RNS test-time training. Defaults = the authors'
    implementation (the code that produced the paper's numbers)."""

    steps: int = 700  # full-batch optimiser steps per image (the paper's Fig. 13: robust to fewer)
    lr: float = 0.002  # implementation value; the paper text says 0.02 (with optimizer="adam")
    weight_decay: float = 5e-4  # AdamW's decoupled decay (or Adam's L2 term), applied to W and b
    optimizer: str = "adamw"  # "adamw" (implementation) | "adam" (paper text; L2 weight decay)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam moment decay rates (torch defaults)
    eps: float = 1e-8  # Adam denominator epsilon (torch default)
    k: int = 4  # nearest bank rows retrieved per query (the paper ablates 1, 4, 16, 32)
    tau: float = 0.1  # temperature of the class relevance weights (eq. 9)
    beta_fused: float = 1.5  # loss factor of the fused samples
    beta_pseudo: float = 0.2  # loss factor of the pseudo-label (KL) samples
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS  # visual share of each fused feature; (0.8,) = ablation
    zero_shot_scale: float = 100.0  # logit scale of zero-shot predictions and pseudo targets (eq. 1)
    use_text: bool = True  # False = the "w/o text" mode: retrieved samples only, uniform weights
    relevance_weights: bool = True  # False = the ablation with uniform class weights
    retrieval: str = "nearest"  # "nearest" | "random" (the Fig. 5 ablation, same number of rows)
    init: str = "kaiming"  # "kaiming" (reference: Kaiming-uniform W, b = 0) | "zeros" (no randomness)
    seed: int = 0  # seeds the Kaiming start and the random-retrieval draw
    solver: str = "fast"  # "fast" (same predictions, faster) | "plain" (the reference loop) | "lbfgs" (approximate)
    fast_subspace: bool = True  # fast solver on CPU: subspace matmuls per step (False = exact full-rank steps)
    fast_extra_rank: int = 4  # subspace directions beyond one per class label
    fast_refresh_travel: float = 0.2  # subspace steps: exact refresh every travel / lr steps (100 at lr 0.002)
    fast_kernel: str = "auto"  # subspace steps run by "native" (compiled C) | "torch" | "auto" (native, else torch)
    cuda_graphs: bool = True  # fast solver on CUDA: replay the step as a captured graph (falls back to eager)
    lbfgs_iterations: int = 50  # solver="lbfgs": iterations of L-BFGS on the same regularised loss

    def __post_init__(self):
        object.__setattr__(self, "lambdas", tuple(float(x) for x in self.lambdas))
        object.__setattr__(self, "betas", tuple(float(x) for x in self.betas))
        checks = [
            (isinstance(self.steps, int) and self.steps >= 1, "steps", "an int >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", "a finite float > 0"),
            (self.weight_decay >= 0 and math.isfinite(self.weight_decay), "weight_decay", "a float >= 0"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "two floats in [0, 1)"),
            (self.eps > 0, "eps", "a float > 0"),
            (isinstance(self.k, int) and self.k >= 1, "k", "an int >= 1"),
            (self.tau > 0 and math.isfinite(self.tau), "tau", "a finite float > 0"),
            (self.beta_fused >= 0, "beta_fused", "a float >= 0"),
            (self.beta_pseudo >= 0, "beta_pseudo", "a float >= 0"),
            (len(self.lambdas) >= 1 and all(0 <= x <= 1 for x in self.lambdas), "lambdas",
             "a non-empty sequence of floats in [0, 1]"),
            (self.zero_shot_scale > 0 and math.isfinite(self.zero_shot_scale), "zero_shot_scale",
             "a finite float > 0"),
            (self.retrieval in RETRIEVALS, "retrieval", f"one of {RETRIEVALS}"),
            (self.init in INITS, "init", f"one of {INITS}"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed", "an int >= 0"),
            (self.solver in SOLVERS, "solver", f"one of {SOLVERS}"),
            (isinstance(self.fast_extra_rank, int) and self.fast_extra_rank >= 0, "fast_extra_rank",
             "an int >= 0"),
            (self.fast_refresh_travel > 0, "fast_refresh_travel", "a float > 0"),
            (self.fast_kernel in FAST_KERNELS, "fast_kernel", f"one of {FAST_KERNELS}"),
            (isinstance(self.lbfgs_iterations, int) and self.lbfgs_iterations >= 1, "lbfgs_iterations",
             "an int >= 1"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"AdapterConfig.{name} must be {expected}, got {getattr(self, name)!r}")


def initial_parameters(num_classes: int, dim: int, config: AdapterConfig, *,
                       device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's start: W (C, d), b (C,), float32, on `device`.

    "kaiming": W ~ U(-sqrt(6/d), sqrt(6/d)) as torch's kaiming_uniform_(mode="fan_in",
    nonlinearity="relu") draws it in the authors' linear layer, from a CPU generator seeded with
    config.seed (so CPU and GPU start identically); b = 0. "zeros": W = 0, b = 0.
    """
    weight = torch.zeros(num_classes, dim, dtype=torch.float32)
    if config.init == "kaiming" and weight.numel():
        generator = torch.Generator().manual_seed(config.seed)
        torch.nn.init.kaiming_uniform_(weight, mode="fan_in", nonlinearity="relu", generator=generator)
    return weight.to(device), torch.zeros(num_classes, dtype=torch.float32, device=device)


def plain_loss(logits: torch.Tensor, problem: TrainingProblem, num_hard: int | None = None) -> torch.Tensor:
    """The reference objective, written as the authors' code writes it: mean over all M rows of
    [w CE (retrieved), beta_f w CE (fused), beta_p w KL(p || softmax) (pseudo)], w the
    L1-normalised relevance weight of each row. logits: (M, C). Rows are ordered hard (retrieved,
    fused) then pseudo; num_hard = their count (computed when None)."""
    if num_hard is None:
        num_hard = int((problem.kinds != PSEUDO).sum())
    log_probs = F.log_softmax(logits, dim=-1)
    loss_pseudo = F.kl_div(log_probs[num_hard:], problem.targets[num_hard:], reduction="none")
    loss_pseudo = (loss_pseudo * problem.weights[num_hard:, None]).sum(dim=-1)
    loss_hard = F.cross_entropy(logits[:num_hard], problem.labels[:num_hard], reduction="none")
    loss_hard = loss_hard * problem.weights[:num_hard]
    return torch.cat([loss_hard * problem.betas[:num_hard],
                      loss_pseudo * problem.betas[num_hard:]]).mean()


def solve_plain(problem: TrainingProblem, config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loop: the authors' training code (autograd, torch.optim.AdamW, full batch),
    unchanged in substance. Returns the trained (W (C, d), b (C,))."""
    features = problem.features
    weight, bias = initial_parameters(problem.num_classes, features.shape[1], config, device=features.device)
    weight, bias = torch.nn.Parameter(weight), torch.nn.Parameter(bias)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class([weight, bias], lr=config.lr, betas=config.betas, eps=config.eps,
                                weight_decay=config.weight_decay)
    num_hard = int((problem.kinds != PSEUDO).sum())
    with torch.enable_grad():
        for _ in range(config.steps):
            optimizer.zero_grad()
            loss = plain_loss(features @ weight.T + bias, problem, num_hard)
            loss.backward()
            optimizer.step()
    return weight.detach(), bias.detach()


def solve(problem: TrainingProblem, config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the classifier of `problem` with the solver named by config.solver."""
    if config.solver == "plain":
        return solve_plain(problem, config)
    if config.solver == "lbfgs":
        from rns_ros.core.adapter_options import solve_lbfgs
        return solve_lbfgs(problem, config)
    from rns_ros.core.fast_adapter import solve_fast
    return solve_fast(problem, config)


def predict_from_problem(problem: TrainingProblem, queries: torch.Tensor,
                         config: AdapterConfig) -> torch.Tensor:
    """(N, C) probabilities for `queries` given a built problem (trains when mode is "train")."""
    num_queries, num_classes = queries.shape[0], problem.num_classes
    if problem.mode == "zero_shot":
        return zero_shot_probabilities(queries, problem.text, config.zero_shot_scale)
    if problem.mode == "uniform":
        return queries.new_full((num_queries, num_classes), 1.0 / num_classes)
    weight, bias = solve(problem, config)
    return torch.softmax(queries @ weight.T + bias, dim=1)


def _class_columns(class_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Map class ids to their column in the ascending `class_ids`."""
    columns = torch.searchsorted(class_ids, labels)
    if labels.numel() and not bool((class_ids[columns.clamp(max=len(class_ids) - 1)] == labels).all()):
        raise ValueError("the memory returned feature rows of a class that is not in memory.class_ids")
    return columns


def _checked_queries(queries, dim: int | None) -> torch.Tensor:
    """The queries as an (N, d) float32 tensor on their device, or a ValueError naming the problem."""
    queries = torch.as_tensor(queries)
    if queries.dim() != 2 or (dim is not None and queries.shape[1] != dim):
        raise ValueError(f"queries must have shape (N, {dim if dim is not None else 'd'}), "
                         f"got {tuple(queries.shape)}")
    if not queries.is_floating_point():
        raise ValueError(f"queries must be floating point, got {queries.dtype}")
    if not bool(torch.isfinite(queries).all()):
        raise ValueError("queries contain NaN or inf; pass finite unit-norm features")
    return queries.to(torch.float32)


class TestTimeAdapter:
    """Per-image test-time training on a support memory (section 4). Stateless between images.

    >>> probs = TestTimeAdapter(AdapterConfig(seed=0)).predict(queries, memory)   # (N, C)
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, config: AdapterConfig | None = None):
        self.config = config if config is not None else AdapterConfig()
        if not isinstance(self.config, AdapterConfig):
            raise ValueError(f"config must be an AdapterConfig, got {type(self.config).__name__}")

    def build_problem(self, queries, memory) -> tuple[torch.Tensor, TrainingProblem]:
        """Validate the queries and build the training problem against `memory`.

        Returns the (N, d) float32 unit-norm queries actually used and the problem.
        """
        text, has_text = memory.text_matrix()
        queries = _checked_queries(queries, text.shape[1])
        device = queries.device
        queries = F.normalize(queries, dim=1)  # unit-norm already; made sure
        class_ids = torch.as_tensor(list(memory.class_ids), dtype=torch.int64, device=device)
        bank, bank_classes = memory.bank()
        prototypes, prototype_classes = memory.prototypes()
        search_rows = None
        if bank.shape[0] > 0 and queries.shape[0] > 0 and len(class_ids) > 0:
            search_rows = memory.search(queries.to(bank.device), self.config.k)[2].to(device)
        problem = build_training_problem(
            queries, bank.to(device, torch.float32), _class_columns(class_ids, bank_classes.to(device)),
            prototypes.to(device, torch.float32), _class_columns(class_ids, prototype_classes.to(device)),
            text.to(device, torch.float32), has_text.to(device), self.config, search_rows)
        return queries, problem

    def predict(self, queries, memory) -> torch.Tensor:
        """(N, C) class probabilities of the N query features, columns in memory.class_ids order,
        rows summing to 1. queries: (N, d) unit-norm float tensor (patches or region embeddings).

        No class: (N, 0). No visual support at all: plain zero-shot softmax(100 q . t) (uniform when
        no class has text either). Refused (ValueError, nothing changes): wrong shape or dtype,
        NaN or inf.
        """
        if len(memory.class_ids) == 0:
            queries = _checked_queries(queries, getattr(memory, "dim", None))
            return queries.new_zeros(queries.shape[0], 0)
        queries, problem = self.build_problem(queries, memory)
        if queries.shape[0] == 0:
            return queries.new_zeros(0, problem.num_classes)
        return predict_from_problem(problem, queries, self.config)

    def predict_many(self, queries_list, memory) -> list[torch.Tensor]:
        """`predict` for several images against one memory, their classifiers trained together in
        one batched loop of exact steps (`adapter_options.solve_fast_batched`; the speed option
        "batching several frames"). Each result equals predict() with fast_subspace=False up to float
        rounding. Images without visual support are answered zero-shot, as in predict()."""
        if len(memory.class_ids) == 0:
            return [self.predict(q, memory) for q in queries_list]
        built = [self.build_problem(q, memory) for q in queries_list]
        batch = [i for i, (q, p) in enumerate(built) if p.mode == "train" and q.shape[0] > 0]
        results: list[torch.Tensor | None] = [None] * len(built)
        if batch:
            from rns_ros.core.adapter_options import solve_fast_batched
            solved = solve_fast_batched([built[i][1] for i in batch], self.config)
            for i, (weight, bias) in zip(batch, solved):
                results[i] = torch.softmax(built[i][0] @ weight.T + bias, dim=1)
        for i, (queries, problem) in enumerate(built):
            if results[i] is None:
                results[i] = (queries.new_zeros(0, problem.num_classes) if queries.shape[0] == 0
                              else predict_from_problem(problem, queries, self.config))
        return results

