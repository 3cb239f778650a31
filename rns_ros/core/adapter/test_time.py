"""`TestTimeAdapter`, the entry point of the adapter stage (rns-method.md section 4).

Per image: build the training problem (`problem.build_training_problem`: retrieved, fused and
pseudo rows with their weights), train a linear classifier g(x) = W x + b on it from scratch, and
return softmax(W q + b) for every query. The solvers train the same objective:

- ``solver="plain"``: `plain.solve_plain`, the reference loop kept as the oracle.
- ``solver="fast"`` (default): `fast.solve_fast`, the same objective, optimiser, start and step
  count with analytic gradients in preallocated buffers; exact steps on CUDA (and with
  fast_subspace=False), subspace steps with periodic exact refreshes on the CPU, run by a compiled
  kernel (`native.py`) where a C compiler exists. Its agreement with the plain loop is tested
  (test/core/adapter/test_adapter_fast.py) and benchmarked (scripts/bench_adapter.py).
- ``solver="lbfgs"`` and batched frames: `options.py`, the speed options that change what is computed.

On CUDA every matmul of the adapter (retrieval, problem building, the steps, the prediction) runs
in full fp32, whatever TF32 setting the process has (`matmul_precision.exact_fp32`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.fast import solve_fast
from rns_ros.core.adapter.options import solve_fast_batched, solve_lbfgs
from rns_ros.core.adapter.plain import solve_plain
from rns_ros.core.adapter.problem import TrainingProblem, build_training_problem, zero_shot_probabilities
from rns_ros.core.matmul_precision import exact_fp32


def solve(problem: TrainingProblem, config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the classifier of `problem` with the solver named by config.solver."""
    if config.solver == "plain":
        return solve_plain(problem, config)
    if config.solver == "lbfgs":
        return solve_lbfgs(problem, config)
    return solve_fast(problem, config)


def predict_from_problem(problem: TrainingProblem, queries: torch.Tensor,
                         config: AdapterConfig) -> torch.Tensor:
    """(N, C) probabilities for `queries` given a built problem (trains when mode is "train")."""
    num_queries, num_classes = queries.shape[0], problem.num_classes
    with exact_fp32(queries.device):
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


def _device_of(queries) -> torch.device:
    return queries.device if isinstance(queries, torch.Tensor) else torch.device("cpu")


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
        with exact_fp32(_device_of(queries)):
            queries, problem = self.build_problem(queries, memory)
            if queries.shape[0] == 0:
                return queries.new_zeros(0, problem.num_classes)
            return predict_from_problem(problem, queries, self.config)

    def predict_many(self, queries_list, memory) -> list[torch.Tensor]:
        """`predict` for several images against one memory, their classifiers trained together in
        one batched loop of exact steps (`options.solve_fast_batched`; the speed option
        "batching several frames"). Each result equals predict() with fast_subspace=False up to float
        rounding. Images without visual support are answered zero-shot, as in predict()."""
        if len(memory.class_ids) == 0:
            return [self.predict(q, memory) for q in queries_list]
        if not queries_list:
            return []
        with exact_fp32(_device_of(queries_list[0])):
            return self._predict_many(queries_list, memory)

    def _predict_many(self, queries_list, memory) -> list[torch.Tensor]:
        built = [self.build_problem(q, memory) for q in queries_list]
        batch = [i for i, (q, p) in enumerate(built) if p.mode == "train" and q.shape[0] > 0]
        results: list[torch.Tensor | None] = [None] * len(built)
        if batch:
            solved = solve_fast_batched([built[i][1] for i in batch], self.config)
            for i, (weight, bias) in zip(batch, solved):
                results[i] = torch.softmax(built[i][0] @ weight.T + bias, dim=1)
        for i, (queries, problem) in enumerate(built):
            if results[i] is None:
                results[i] = (queries.new_zeros(0, problem.num_classes) if queries.shape[0] == 0
                              else predict_from_problem(problem, queries, self.config))
        return results

