"""Speed options that change what is computed (issue 6, item 2). All off by default; their
agreement with the default and their time are measured by scripts/bench_adapter.py.

- Fewer steps / a larger learning rate: plain `AdapterConfig` values (`steps`, `lr`), no code here.
- `solve_lbfgs` (`AdapterConfig(solver="lbfgs")`): L-BFGS from the same start on the same weighted
  loss, with weight decay read as an L2 term (weight_decay / 2) ||P||^2 (AdamW's decoupled decay has
  no loss form), for `lbfgs_iterations` iterations. A different optimiser: it converges towards a
  different point than 700 AdamW steps, so expect different predictions on uncertain queries.
- `solve_fast_batched`: the classifiers of several images trained together, each exactly as the
  fast solver's exact step would (padding rows carry zero weight and contribute exactly nothing):
  `graphed_steps.solve_graphed` with a batch, so on CUDA its steps are captured and replayed like
  a single frame's. Pays off where one image's step is launch-bound (a GPU), little on a CPU.
"""
from __future__ import annotations

from typing import Sequence

import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.graphed_steps import solve_graphed
from rns_ros.core.adapter.plain import initial_parameters, plain_loss
from rns_ros.core.adapter.problem import TrainingProblem


def solve_lbfgs(problem: TrainingProblem, config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """L-BFGS (strong-Wolfe line search) from the configured start; returns (W (C, d), b (C,))."""
    features = problem.features
    weight, bias = initial_parameters(problem.num_classes, features.shape[1], config,
                                      device=features.device)
    weight, bias = torch.nn.Parameter(weight), torch.nn.Parameter(bias)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=config.lbfgs_iterations,
                                  history_size=10, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        optimizer.zero_grad()
        loss = plain_loss(features @ weight.T + bias, problem)
        loss = loss + 0.5 * config.weight_decay * (weight.square().sum() + bias.square().sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def solve_fast_batched(problems: Sequence[TrainingProblem], config: AdapterConfig
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Train the classifiers of several "train"-mode problems (same C and d) in one batched loop of
    exact steps. Returns one (W (C, d), b (C,)) per problem, in order."""
    return solve_graphed(problems, config)
