"""The methods the harness compares, all on the same queries and the same support memory.

Every method maps (N, d) queries + a SupportMemory to (N, C) class probabilities with columns in
`memory.class_ids` order:

- zero-shot: softmax(100 q . t_c) (RNS eq. 1); text only.
- rns and its ablations (RNS section 4.6): TestTimeAdapter with an AdapterConfig variant.
- knn-clip: votes of the k nearest support features (weighted by softmax(similarity / T)), used
  where the zero-shot classifier is not confident (max probability < `threshold`), zero-shot
  elsewhere; threshold 1.0 = votes only (the paper's "w/o text" variant).
- freeda: FREEDA adapted to real support: score_c = alpha q . v_c + (1 - alpha) g . t_c, with
  v_c the class's visual prototype (memory.prototypes(), matched to the class by ground truth)
  and g the image's mean query (the global term); alpha = 1 without text.
- linear: an offline linear classifier trained once per support set on the per-image class
  features (no text, no test-time training).

Classes without text use the mean of the available text features (RNS section 4.4).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

ZERO_SHOT_SCALE = 100.0  # CLIP logit scale of eq. 1


def filled_text(memory) -> torch.Tensor | None:
    """(C, d) text features in column order, missing rows replaced by the normalised mean of the
    available ones; None when no class has text."""
    text, has = memory.text_matrix()
    if not bool(has.any()):
        return None
    if not bool(has.all()):
        text = text.clone()
        text[~has] = F.normalize(text[has].mean(dim=0), dim=-1)
    return text


def zero_shot_probs(queries: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return torch.softmax(ZERO_SHOT_SCALE * queries @ text.T, dim=-1)


def _columns(memory) -> dict[int, int]:
    return {cid: col for col, cid in enumerate(memory.class_ids)}


class Method:
    """Base: `prepare(memory)` once per support set, then `predict(queries, memory)` per image."""

    name: str = ""
    needs_text = False  # cannot run when no class has text
    needs_visual = False  # cannot run without any support feature
    uses_support = True  # False: the result does not depend on B or the sampled images

    def prepare(self, memory) -> None:
        pass

    def predict(self, queries: torch.Tensor, memory) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Everything that determines the method's output (for resumable runs)."""
        return {"name": self.name}


class ZeroShot(Method):
    name = "zero-shot"
    needs_text = True
    uses_support = False

    def predict(self, queries, memory):
        text = filled_text(memory)
        if text is None:
            raise ValueError("zero-shot needs class text features; no class has one")
        return zero_shot_probs(queries, text)


class RNS(Method):
    """RNS through the engine's TestTimeAdapter; `overrides` are AdapterConfig fields."""

    def __init__(self, name: str = "rns", **overrides: Any) -> None:
        self.name = name
        self.overrides = overrides
        self._adapter = self._build()  # bad overrides are refused here, before any work

    def _build(self):
        from rns_ros.core.adapter.config import AdapterConfig
        from rns_ros.core.adapter.test_time import TestTimeAdapter
        unknown = set(self.overrides) - {f.name for f in dataclasses.fields(AdapterConfig)}
        if unknown:
            raise ValueError(f"{self.name}: unknown AdapterConfig fields {sorted(unknown)}")
        return TestTimeAdapter(AdapterConfig(**self.overrides))

    def predict(self, queries, memory):
        return self._adapter.predict(queries, memory)

    def describe(self):
        from rns_ros.core.adapter.config import AdapterConfig
        return {"name": self.name, "adapter": dataclasses.asdict(AdapterConfig(**self.overrides))}


@dataclass(frozen=True)
class KnnClipConfig:
    k: int = 4  # neighbours voting per query (RNS's retrieval k)
    temperature: float = 0.07  # vote weight exp(similarity / T): T -> 0 is 1-NN, large T majority
    threshold: float = 0.5  # zero-shot confidence below which the kNN vote is used; 1.0 = always


class KnnClip(Method):
    name = "knn-clip"
    needs_visual = True

    def __init__(self, config: KnnClipConfig = KnnClipConfig()) -> None:
        self.config = config

    def knn_votes(self, queries, memory) -> torch.Tensor:
        """(N, C) votes of the k nearest per-image class features, each weighted by
        softmax(similarity / T) over the neighbours of its query."""
        scores, class_ids, _ = memory.search(queries, self.config.k)
        cols = _columns(memory)
        n, c = queries.shape[0], len(cols)
        valid = class_ids > 0
        lut = torch.zeros(max(cols) + 1, dtype=torch.int64, device=queries.device)
        lut[torch.tensor(list(cols), device=queries.device)] = torch.tensor(list(cols.values()), device=queries.device)
        col_idx = lut[class_ids.clamp(min=0).to(queries.device)]
        logits = torch.where(valid, scores.float() / self.config.temperature, torch.full_like(scores, -torch.inf))
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)  # a row with no neighbour votes nothing
        votes = torch.zeros(n, c, device=queries.device, dtype=torch.float32)
        votes.scatter_add_(1, col_idx, weights)
        return votes

    def predict(self, queries, memory):
        votes = self.knn_votes(queries, memory)
        text = filled_text(memory)
        if text is None or self.config.threshold >= 1.0:
            return votes
        zs = zero_shot_probs(queries, text)
        unsure = zs.max(dim=1, keepdim=True).values < self.config.threshold
        return torch.where(unsure, votes, zs)

    def describe(self):
        return {"name": self.name, **dataclasses.asdict(self.config)}


@dataclass(frozen=True)
class FreedaConfig:
    alpha: float = 0.5  # weight of the local visual similarity; 1 - alpha for the global text term


class Freeda(Method):
    name = "freeda"
    needs_visual = True

    def __init__(self, config: FreedaConfig = FreedaConfig()) -> None:
        self.config = config

    def predict(self, queries, memory):
        cols = _columns(memory)
        protos, proto_ids = memory.prototypes()
        text = filled_text(memory)
        d = queries.shape[1]
        visual = torch.zeros(len(cols), d, device=queries.device)
        has_visual = torch.zeros(len(cols), dtype=torch.bool, device=queries.device)
        for row, cid in zip(protos, proto_ids.tolist()):
            visual[cols[cid]] = row
            has_visual[cols[cid]] = True
        if text is None:
            # Visual only: classes without a prototype cannot win.
            local = queries @ visual.T
            score = torch.where(has_visual[None, :], local, torch.full_like(local, -2.0))
        else:
            # Classes without a prototype compare with their text instead.
            visual = torch.where(has_visual[:, None], visual, text)
            g = F.normalize(queries.mean(dim=0), dim=-1)
            score = self.config.alpha * (queries @ visual.T) + (1 - self.config.alpha) * (g @ text.T)[None, :]
        return torch.softmax(ZERO_SHOT_SCALE * score, dim=-1)

    def describe(self):
        return {"name": self.name, **dataclasses.asdict(self.config)}


@dataclass(frozen=True)
class LinearProbeConfig:
    steps: int = 700  # full-batch optimiser steps
    lr: float = 0.002  # AdamW learning rate (the adapter's default)
    weight_decay: float = 5e-4
    seed: int = 0


class LinearProbe(Method):
    """Offline multinomial logistic regression on the support bank (per-image class features)."""

    name = "linear"
    needs_visual = True

    def __init__(self, config: LinearProbeConfig = LinearProbeConfig()) -> None:
        self.config = config
        self._weights: tuple[torch.Tensor, torch.Tensor] | None = None
        self._version: int | None = None

    def prepare(self, memory):
        if self._weights is not None and self._version == memory.version:
            return
        feats, class_ids = memory.bank()
        if feats.shape[0] == 0:
            raise ValueError("linear needs support features; the memory has none")
        cols = _columns(memory)
        target = torch.tensor([cols[int(c)] for c in class_ids.tolist()], device=feats.device)
        self._weights = train_linear_probe(feats.float(), target, len(cols), self.config)
        self._version = memory.version

    def predict(self, queries, memory):
        self.prepare(memory)
        w, b = self._weights
        return torch.softmax(queries @ w.T + b, dim=-1)

    def describe(self):
        return {"name": self.name, **dataclasses.asdict(self.config)}


def train_linear_probe(feats: torch.Tensor, target: torch.Tensor, num_classes: int,
                       config: LinearProbeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch AdamW on the mean cross-entropy of softmax(W x + b), analytic gradients (no
    autograd or torch.optim: this is all it needs, and it stays cheap to import).
    `feats`: (M, d), `target`: (M,) class columns. Returns (W (C, d), b (C,))."""
    m, d = feats.shape
    gen = torch.Generator().manual_seed(config.seed)
    bound = 1.0 / d ** 0.5  # nn.Linear's Kaiming-uniform weight init; bias 0 as in the adapter
    params = (torch.rand(num_classes, d + 1, generator=gen) * 2 - 1).mul_(bound).to(feats.device)
    params[:, d] = 0.0
    inputs = torch.cat([feats, torch.ones(m, 1, device=feats.device)], dim=1)  # bias as a last input
    onehot = F.one_hot(target, num_classes).to(feats.dtype)
    exp_avg = torch.zeros_like(params)
    exp_avg_sq = torch.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, config.steps + 1):
        residual = (torch.softmax(inputs @ params.T, dim=1) - onehot) / m  # dL/dlogits
        grad = residual.T @ inputs
        params.mul_(1 - config.lr * config.weight_decay)  # decoupled weight decay
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** step)).sqrt_().add_(eps)
        params.addcdiv_(exp_avg, denom, value=-config.lr / (1 - beta1 ** step))
    return params[:, :d].clone(), params[:, d].clone()


# RNS ablations of paper Table 1 / Table 5 / Figs. 4, 5, 19, as AdapterConfig overrides.
RNS_VARIANTS: dict[str, dict[str, Any]] = {
    "rns": {},
    "rns-no-relevance": {"relevance_weights": False},
    "rns-single-lambda": {"lambdas": (0.8,)},
    "rns-no-text": {"use_text": False},
    "rns-random": {"retrieval": "random"},
    "rns-no-pseudo": {"pseudo_labels": False},  # Figs. 4 and 19: no pseudo-label rows at all
}
METHOD_NAMES: tuple[str, ...] = (
    "zero-shot", *RNS_VARIANTS, "rns-k1", "rns-k16", "rns-k32", "knn-clip", "freeda", "linear")


@dataclass(frozen=True)
class MethodOptions:
    """Run-wide settings that several methods share (from the CLI)."""

    steps: int | None = None  # optimiser steps of RNS and the linear probe (None = their defaults)
    seed: int = 0  # seed of every classifier's initialisation
    solver: str | None = None  # AdapterConfig.solver override (None = its default)
    adapter: dict[str, Any] = field(default_factory=dict)  # further AdapterConfig overrides (all RNS variants)
    knn: KnnClipConfig = field(default_factory=KnnClipConfig)
    freeda: FreedaConfig = field(default_factory=FreedaConfig)
    no_text: bool = False  # the w/o text setting: kNN-CLIP threshold 1.0, FREEDA alpha 1.0


def build_method(name: str, options: MethodOptions = MethodOptions()) -> Method:
    """A fresh method instance by name (see METHOD_NAMES; also 'rns-k<N>' for any N)."""
    key = name.strip().lower()
    if key == "zero-shot":
        return ZeroShot()
    k_match = re.fullmatch(r"rns-k(\d+)", key)
    if key in RNS_VARIANTS or k_match:
        overrides = {**options.adapter, **RNS_VARIANTS.get(key, {})}  # the variant's switch wins
        if k_match:
            overrides["k"] = int(k_match.group(1))
        overrides["seed"] = options.seed
        if options.steps is not None:
            overrides["steps"] = options.steps
        if options.solver is not None:
            overrides["solver"] = options.solver
        return RNS(key, **overrides)
    if key == "knn-clip":
        cfg = dataclasses.replace(options.knn, threshold=1.0) if options.no_text else options.knn
        return KnnClip(cfg)
    if key == "freeda":
        cfg = dataclasses.replace(options.freeda, alpha=1.0) if options.no_text else options.freeda
        return Freeda(cfg)
    if key == "linear":
        steps = options.steps if options.steps is not None else LinearProbeConfig.steps
        return LinearProbe(LinearProbeConfig(steps=steps, seed=options.seed))
    raise ValueError(f"unknown method {name!r}; choose from {list(METHOD_NAMES)} or 'rns-k<N>'")
