"""Speed options that change what is computed (issue 6, item 2). All off by default; their
agreement with the default and their time are measured by scripts/bench_adapter.py.

- Fewer steps / a larger learning rate: plain `AdapterConfig` values (`steps`, `lr`), no code here.
- `solve_lbfgs` (`AdapterConfig(solver="lbfgs")`): L-BFGS from the same start on the same weighted
  loss, with weight decay read as an L2 term (weight_decay / 2) ||P||^2 (AdamW's decoupled decay has
  no loss form), for `lbfgs_iterations` iterations. A different optimiser: it converges towards a
  different point than 700 AdamW steps, so expect different predictions on uncertain queries.
- `solve_fast_batched`: the classifiers of several images trained together, each exactly as the
  fast solver's exact step would (padding rows carry zero weight and contribute exactly nothing).
  Pays off where one image's step is launch-bound (a GPU), little on a CPU.
"""
from __future__ import annotations

from typing import Sequence

import torch

from rns_ros.core.adapter.config import AdapterConfig
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
    if not problems:
        return []
    num_classes, dim = problems[0].num_classes, problems[0].features.shape[1]
    if any(p.num_classes != num_classes or p.features.shape[1] != dim or p.mode != "train"
           for p in problems):
        raise ValueError("batched problems must all be in 'train' mode with the same classes and dim")
    device, dtype = problems[0].features.device, problems[0].features.dtype
    batch, rows = len(problems), max(p.num_rows for p in problems)
    inputs = torch.zeros(batch, rows, dim + 1, dtype=dtype, device=device)  # [X | 1], zero padding
    prob_scale = torch.zeros(batch, 1, rows, dtype=dtype, device=device)
    neg_target = torch.zeros(batch, num_classes, rows, dtype=dtype, device=device)
    for i, p in enumerate(problems):
        factor = p.loss_weights / p.num_rows  # each problem's own mean
        inputs[i, : p.num_rows, :dim] = p.features
        inputs[i, : p.num_rows, dim] = 1.0
        prob_scale[i, 0, : p.num_rows] = factor * p.targets.sum(dim=1)
        neg_target[i, :, : p.num_rows] = -factor[None, :] * p.targets.T
    inputs_t = inputs.transpose(1, 2).contiguous()
    weight, bias = initial_parameters(num_classes, dim, config, device=device)
    params = torch.cat([weight, bias[:, None]], dim=1).expand(batch, -1, -1).contiguous()
    exp_avg, exp_avg_sq, grad = (torch.zeros_like(params) for _ in range(3))
    logits = torch.zeros(batch, num_classes, rows, dtype=dtype, device=device)
    residual = torch.zeros_like(logits)
    step_count = torch.zeros((), dtype=torch.float32, device=device)
    kernel = torch._fused_adamw_ if config.optimizer == "adamw" else torch._fused_adam_
    hyper = dict(lr=config.lr, beta1=config.betas[0], beta2=config.betas[1],
                 weight_decay=config.weight_decay, eps=config.eps, amsgrad=False, maximize=False)
    for _ in range(config.steps):
        torch.bmm(params, inputs_t, out=logits)
        torch.addcmul(neg_target, torch.softmax(logits, dim=1), prob_scale, out=residual)
        torch.bmm(residual, inputs, out=grad)
        step_count.add_(1.0)
        kernel([params], [grad], [exp_avg], [exp_avg_sq], [], [step_count], **hyper)
    return [(params[i, :, :dim].clone(), params[i, :, dim].clone()) for i in range(batch)]
