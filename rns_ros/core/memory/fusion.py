"""Fusion of visual and textual class features (RNS section 2.2, eqs. 4-5)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

# The mixing coefficients of the authors' implementation.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.9, 0.8, 0.6, 0.4, 0.2, 0.0)


def fuse_features(visual: torch.Tensor, text: torch.Tensor,
                  lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> torch.Tensor:
    """f_c^lambda = normalise(lambda * v_c + (1 - lambda) * t_c), for every class and lambda.

    Lambda weights the *visual* part (lambda = 0 is the pure text feature), as in the reference
    implementation that produced the paper's numbers (the printed eq. 4 reads the other way).
    `visual`, `text`: (K, d), row c of each belonging to the same class.
    Returns (K, L, d) with L = len(lambdas).
    """
    if visual.shape != text.shape or visual.dim() != 2:
        raise ValueError(f"visual {tuple(visual.shape)} and text {tuple(text.shape)} must both be (K, d)")
    lam = torch.as_tensor(list(lambdas), dtype=visual.dtype, device=visual.device)
    if lam.numel() == 0 or bool(((lam < 0) | (lam > 1)).any()):
        raise ValueError(f"lambdas must be a non-empty list of values in [0, 1], got {[float(v) for v in lambdas]}")
    mixed = lam[None, :, None] * visual[:, None, :] + (1 - lam)[None, :, None] * text[:, None, :]
    return F.normalize(mixed, dim=-1)
