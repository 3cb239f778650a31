"""The per-image training problem of RNS test-time training (rns-method.md sections 3 and 4).

A pure function of explicit tensors: queries, the visual support bank, the aggregated visual class
features, the text features and the configuration go in; a `TrainingProblem` comes out (training
rows, targets, per-sample weights, kinds). The solvers (`adapter.solve_plain`,
`fast.solve_fast`) only ever see a `TrainingProblem`, so every term of the objective is
built, and unit-tested, here, once.

Conventions: C classes are the columns (in the support memory's `class_ids` order); class labels of
bank rows and prototypes are *column indices* 0..C-1. Rows of the problem are ordered as in the
reference implementation: retrieved rows (ascending bank row), fused rows, pseudo rows; fused and
pseudo rows are lambda-major (all classes for the first lambda, then the next lambda, ...), classes
ascending within a lambda.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.memory.fusion import fuse_features

RETRIEVED, FUSED, PSEUDO = 0, 1, 2  # values of TrainingProblem.kinds
MODES = ("train", "zero_shot", "uniform")


@dataclass(frozen=True)
class TrainingProblem:
    """Everything a solver needs for one image, built once (all float32 tensors on one device).

    mode: "train" (train the classifier on the rows), "zero_shot" (no visual support was usable:
    the prediction is softmax(zero_shot_scale * q . t)), "uniform" (neither text nor visual support:
    every class gets 1/C).
    """

    mode: str
    features: torch.Tensor  # (M, d) training rows: retrieved, fused, pseudo (unit norm)
    targets: torch.Tensor  # (M, C) one-hot rows (retrieved, fused), soft rows summing to 1 (pseudo)
    labels: torch.Tensor  # (M,) int64 column of each row's target (argmax for soft rows)
    kinds: torch.Tensor  # (M,) int64: RETRIEVED, FUSED or PSEUDO
    weights: torch.Tensor  # (M,) relevance w[label], L1-normalised over all rows (sums to 1)
    betas: torch.Tensor  # (M,) 1 (retrieved), beta_fused, beta_pseudo
    relevance: torch.Tensor  # (C,) class relevance weights w (sum to 1)
    text: torch.Tensor  # (C, d) text features after mean-text substitution (zeros if no text)
    text_available: bool  # False in the w/o-text mode or when no class has text
    retrieved_rows: torch.Tensor  # (R,) int64 bank rows used as retrieved samples, ascending
    num_classes: int

    @property
    def num_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def loss_weights(self) -> torch.Tensor:
        """(M,) beta_kind * w[label] / sum: the factor of each row's loss before the mean."""
        return self.betas * self.weights

    def count(self, kind: int) -> int:
        return int((self.kinds == kind).sum())


def substitute_missing_text(text: torch.Tensor, has_text: torch.Tensor) -> torch.Tensor:
    """Section 4.4: replace each missing t_c by the normalised mean of the available text features.

    text: (C, d); has_text: (C,) bool, at least one True. Returns a new (C, d) tensor.
    """
    mean_text = F.normalize(text[has_text].mean(dim=0), dim=0)
    return torch.where(has_text[:, None], text, mean_text[None, :])


def relevance_weights(queries: torch.Tensor, text: torch.Tensor, tau: float, *,
                      uniform: bool) -> torch.Tensor:
    """Section 4.1 (eqs. 8-9): w = softmax_c(g . t_c / tau), g = normalise(mean of the queries).

    uniform=True gives 1/C for every class (a class without text, text disabled, or the
    no-relevance-weights ablation). Returns (C,).
    """
    num_classes = text.shape[0]
    if uniform:
        return torch.full((num_classes,), 1.0 / num_classes, dtype=text.dtype, device=text.device)
    global_feature = F.normalize(queries.mean(dim=0), dim=0)
    return torch.softmax(text @ global_feature / tau, dim=0)


def zero_shot_probabilities(queries: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    """Eq. 1: softmax over classes of (scale * q . t_c). (N, d), (C, d) -> (N, C)."""
    return torch.softmax(scale * (queries @ text.T), dim=1)


def nearest_rows(queries: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """The k nearest bank rows of every query by inner product (exact, one matmul + top-k).

    Returns (N, min(k, M)) int64 bank rows. `TestTimeAdapter` uses the memory's persistent index
    instead; this is the reference used when no search result is passed in.
    """
    k = min(k, bank.shape[0])
    return torch.topk(queries @ bank.T, k, dim=1).indices


def select_retrieved_rows(search_rows: torch.Tensor, num_bank_rows: int, config: AdapterConfig,
                          ) -> torch.Tensor:
    """Section 3: the de-duplicated union of the per-query nearest rows (ascending).

    search_rows: (N, k) bank rows from a search; -1 marks an unfilled slot (dropped).
    retrieval="random" (the Fig. 5 ablation) draws the same number of distinct rows uniformly at
    random from the whole bank instead, from a generator seeded with config.seed.
    """
    rows = torch.unique(search_rows[search_rows >= 0])  # sorted ascending
    if config.retrieval == "nearest":
        return rows
    generator = torch.Generator().manual_seed(config.seed)
    drawn = torch.randperm(num_bank_rows, generator=generator)[: rows.numel()]
    return torch.sort(drawn).values.to(rows.device)


def _pseudo_rows(queries: torch.Tensor, text: torch.Tensor, has_visual: torch.Tensor,
                 config: AdapterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 4.3: pseudo samples for classes without visual support.

    Every class without visual support that is the zero-shot argmax of at least one query gets
    u_c = normalise(mean of those queries), rows f = normalise(lambda u_c + (1 - lambda) t_c) for
    each lambda, and soft targets softmax(scale * f . t_c'). Returns ((P, d) rows, (P, C) targets).
    """
    num_classes, dim = text.shape
    zero_shot_labels = (queries @ text.T).argmax(dim=1)
    counts = torch.bincount(zero_shot_labels, minlength=num_classes)
    classes = torch.nonzero((counts > 0) & ~has_visual).flatten()  # ascending
    if classes.numel() == 0:
        return queries.new_zeros(0, dim), queries.new_zeros(0, num_classes)
    sums = queries.new_zeros(num_classes, dim).index_add_(0, zero_shot_labels, queries)
    means = F.normalize(sums[classes] / counts[classes, None].to(queries.dtype), dim=1)
    rows = fuse_features(means, text[classes], config.lambdas).transpose(0, 1).reshape(-1, dim)
    targets = torch.softmax(config.zero_shot_scale * (rows @ text.T), dim=1)
    return rows, targets


def _check_inputs(queries, bank, bank_labels, prototypes, prototype_labels, text, has_text) -> None:
    dim = text.shape[1]
    for name, tensor in (("queries", queries), ("bank", bank), ("prototypes", prototypes)):
        if tensor.dim() != 2 or tensor.shape[1] != dim:
            raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(tensor.shape)}")
    if bank_labels.shape != (bank.shape[0],) or prototype_labels.shape != (prototypes.shape[0],):
        raise ValueError("bank_labels / prototype_labels must hold one column index per row")
    if has_text.shape != (text.shape[0],) or has_text.dtype != torch.bool:
        raise ValueError(f"has_text must be a ({text.shape[0]},) bool tensor")
    for name, labels in (("bank_labels", bank_labels), ("prototype_labels", prototype_labels)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= text.shape[0]):
            raise ValueError(f"{name} must be column indices in [0, {text.shape[0]})")


def build_training_problem(queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                           prototypes: torch.Tensor, prototype_labels: torch.Tensor,
                           text: torch.Tensor, has_text: torch.Tensor, config: AdapterConfig,
                           search_rows: torch.Tensor | None = None) -> TrainingProblem:
    """Build the training problem of one image (sections 3-4).

    queries: (N, d) unit-norm query features. bank: (B, d) per-image class features v_c^i with
    bank_labels (B,) column indices. prototypes: (K, d) aggregated v_c with prototype_labels (K,).
    text: (C, d) text features (any values where has_text is False); has_text: (C,) bool.
    search_rows: (N, k) nearest bank rows per query from a persistent index (-1 = unfilled);
    None = exact search here. All tensors float32 (int64 labels) on one device.
    """
    _check_inputs(queries, bank, bank_labels, prototypes, prototype_labels, text, has_text)
    num_classes, dim = text.shape
    device, dtype = queries.device, queries.dtype
    text_available = bool(config.use_text) and bool(has_text.any())
    text = substitute_missing_text(text, has_text) if text_available else torch.zeros_like(text)
    uniform = (not text_available) or (not bool(has_text.all())) or (not config.relevance_weights)
    relevance = relevance_weights(queries, text, config.tau, uniform=uniform)
    empty = queries.new_zeros(0, dim)
    no_rows = torch.zeros(0, dtype=torch.int64, device=device)

    retrieved = no_rows
    if bank.shape[0] > 0 and queries.shape[0] > 0:
        if search_rows is None:
            search_rows = nearest_rows(queries, bank, config.k)
        retrieved = select_retrieved_rows(search_rows.to(device), bank.shape[0], config)
    if retrieved.numel() == 0:  # no usable visual support: zero-shot (or uniform without text)
        mode = "zero_shot" if text_available else "uniform"
        return TrainingProblem(mode, empty, queries.new_zeros(0, num_classes), no_rows, no_rows,
                               queries.new_zeros(0), queries.new_zeros(0), relevance, text,
                               text_available, no_rows, num_classes)

    parts_rows = [bank[retrieved]]
    parts_labels = [bank_labels[retrieved]]
    parts_targets = [F.one_hot(parts_labels[0], num_classes).to(dtype)]
    parts_kinds = [RETRIEVED]
    if text_available:
        retrieved_classes = torch.unique(parts_labels[0])
        keep = torch.isin(prototype_labels, retrieved_classes)
        classes = prototype_labels[keep]
        order = torch.argsort(classes)
        classes = classes[order]
        fused = fuse_features(prototypes[keep][order], text[classes], config.lambdas)
        fused_rows = fused.transpose(0, 1).reshape(-1, dim)  # lambda-major
        fused_labels = classes.repeat(len(config.lambdas))
        valid = fused_rows.norm(dim=1) > 0.5  # v_c = -t_c at some lambda: a zero row, dropped
        parts_rows.append(fused_rows[valid])
        parts_labels.append(fused_labels[valid])
        parts_targets.append(F.one_hot(fused_labels[valid], num_classes).to(dtype))
        parts_kinds.append(FUSED)

        if config.pseudo_labels:  # the ablation removes the pseudo rows, not only their weight
            has_visual = torch.zeros(num_classes, dtype=torch.bool, device=device)
            has_visual[prototype_labels] = True
            pseudo_rows, pseudo_targets = _pseudo_rows(queries, text, has_visual, config)
            parts_rows.append(pseudo_rows)
            parts_labels.append(pseudo_targets.argmax(dim=1))
            parts_targets.append(pseudo_targets)
            parts_kinds.append(PSEUDO)

    beta_of_kind = {RETRIEVED: 1.0, FUSED: float(config.beta_fused), PSEUDO: float(config.beta_pseudo)}
    kinds = torch.cat([torch.full((r.shape[0],), k, dtype=torch.int64, device=device)
                       for r, k in zip(parts_rows, parts_kinds)])
    betas = torch.cat([torch.full((r.shape[0],), beta_of_kind[k], dtype=dtype, device=device)
                       for r, k in zip(parts_rows, parts_kinds)])
    labels = torch.cat(parts_labels)
    weights = relevance[labels]
    weights = weights / weights.sum()
    return TrainingProblem("train", torch.cat(parts_rows).contiguous(), torch.cat(parts_targets),
                           labels, kinds, weights, betas, relevance, text, text_available,
                           retrieved, num_classes)
