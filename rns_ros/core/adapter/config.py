"""`AdapterConfig`: every hyperparameter and ablation switch of RNS test-time training
(rns-method.md section 4), with the authors' implementation values as defaults. The bottom of the
adapter stage: every solver reads it, nothing here imports a solver.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from rns_ros.core.memory.fusion import DEFAULT_LAMBDAS

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
    pseudo_labels: bool = True  # False = the "w/o pseudo-labels" ablation (Figs. 4, 19): no pseudo rows at all
    retrieval: str = "nearest"  # "nearest" | "random" (the Fig. 5 ablation, same number of rows)
    init: str = "kaiming"  # "kaiming" (reference: Kaiming-uniform W, b = 0) | "zeros" (no randomness)
    seed: int = 0  # seeds the Kaiming start and the random-retrieval draw
    solver: str = "fast"  # "fast" (the plain loop's result to float rounding, faster) | "plain" (the reference loop) | "lbfgs" (approximate)
    fast_subspace: bool = False  # CPU: True = subspace matmuls per step, faster but approximate (~1% argmax flips on hard problems)
    fast_extra_rank: int = 4  # subspace directions beyond one per class label
    fast_refresh_travel: float = 0.2  # subspace steps: exact refresh every travel / lr steps (100 at lr 0.002)
    fast_kernel: str = "auto"  # CPU steps' non-matmul work run by "native" (compiled C) | "torch" | "auto" (native, else torch)
    cuda_graphs: bool = True  # fast solver on CUDA: replay the step as a captured graph (falls back to eager)
    cpu_threads: int = 1  # torch CPU threads while the fast solver steps (0 = leave torch's setting); see fast.py
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
            (isinstance(self.cpu_threads, int) and self.cpu_threads >= 0, "cpu_threads", "an int >= 0"),
            (isinstance(self.lbfgs_iterations, int) and self.lbfgs_iterations >= 1, "lbfgs_iterations",
             "an int >= 1"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"AdapterConfig.{name} must be {expected}, got {getattr(self, name)!r}")
