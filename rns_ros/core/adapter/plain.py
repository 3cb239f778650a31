"""The plain reference loop (`AdapterConfig(solver="plain")`), written like the authors'
implementation (nn.Parameter, autograd, torch.optim.AdamW), and the two pieces every solver shares
with it: the classifier's start (`initial_parameters`) and the objective (`plain_loss`). It is the
oracle every speed-up is checked against; keep it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.problem import PSEUDO, TrainingProblem


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
