"""Synthetic CLIP-like support memories and queries, for the adapter's tests and benchmark.

NOT real features and no measure of segmentation quality: only a problem with the shapes and the
rough geometry of real ones, so that the solvers can be compared and timed without a model.
Geometry: every image feature shares a common direction (CLIP image features are far from
isotropic), plus a class direction, plus an image-specific and a row-specific noise; text features
share another common direction (the modality gap) plus their class direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns_ros.core.memory.support import SupportMemory


@dataclass(frozen=True)
class SyntheticScenario:
    """Sizes and switches of one synthetic image + support memory."""

    num_classes: int = 20
    dim: int = 512
    support_per_class: int = 60  # per-image class features per class with visual support
    num_queries: int = 800
    classes_in_image: int = 8  # classes the query "image" shows
    visual_fraction: float = 1.0  # share of classes with visual support (partial visual support)
    text_fraction: float = 1.0  # share of classes with text (partial textual support)
    noise: float = 0.9  # query/support row noise relative to the class direction
    seed: int = 0


def build_scenario(spec: SyntheticScenario, *, index_backend: str = "auto"
                   ) -> tuple[torch.Tensor, SupportMemory]:
    """Returns ((N, d) unit-norm float32 queries, a SupportMemory holding the support set)."""
    gen = torch.Generator().manual_seed(spec.seed)
    dim, num_classes = spec.dim, spec.num_classes

    def unit(*shape):
        return F.normalize(torch.randn(*shape, dim, generator=gen), dim=-1)

    image_common, text_common = unit(), unit()
    class_dirs = unit(num_classes)
    text = F.normalize(0.8 * text_common + 0.6 * class_dirs + 0.15 * unit(num_classes), dim=-1)

    def image_rows(labels: torch.Tensor, noise: float) -> torch.Tensor:
        return F.normalize(0.6 * image_common + 0.5 * class_dirs[labels]
                           + noise * 0.5 * unit(labels.shape[0]), dim=-1)

    order = torch.randperm(num_classes, generator=gen)
    with_visual = set(order[: round(spec.visual_fraction * num_classes)].tolist())
    with_text = set(order[num_classes - round(spec.text_fraction * num_classes):].tolist())
    memory = SupportMemory(dim, index_backend=index_backend)
    ids = [memory.add_class(f"class{c}" if c in with_text else None,
                            text_feature=text[c] if c in with_text else None)
           for c in range(num_classes)]
    for c in sorted(with_visual):
        labels = torch.full((spec.support_per_class,), c)
        for row in image_rows(labels, spec.noise):
            memory.add_image_features(row[None], [ids[c]])

    shown = torch.randperm(num_classes, generator=gen)[: spec.classes_in_image]
    query_labels = shown[torch.randint(0, len(shown), (spec.num_queries,), generator=gen)]
    queries = image_rows(query_labels, spec.noise)
    return queries, memory


# Hard problems (issue 14), where approximate solvers show: noisy features, partial visual and
# textual support, 5 to 50 classes; the first two are the issue's own case (20 classes, 8 in the
# image, 60 support features each). Shared by the agreement test and `bench_adapter.py --sweep`.
HARD_SCENARIOS: tuple[SyntheticScenario, ...] = tuple(
    SyntheticScenario(num_classes=classes, dim=dim, num_queries=queries, noise=noise, visual_fraction=visual,
                      text_fraction=text, support_per_class=support, classes_in_image=min(classes, in_image),
                      seed=seed)
    for seed, classes, noise, visual, text, dim, queries, support, in_image in [
        (0, 20, 1.5, 0.5, 0.6, 512, 800, 60, 8), (1, 20, 1.5, 0.5, 0.6, 512, 800, 60, 8),
        (2, 5, 1.5, 1.0, 1.0, 512, 800, 40, 10), (3, 50, 1.2, 0.7, 0.7, 512, 800, 40, 10),
        (4, 35, 0.9, 0.5, 1.0, 512, 400, 40, 10), (5, 10, 2.0, 1.0, 0.5, 512, 400, 40, 10),
        (6, 50, 1.5, 0.3, 0.8, 256, 400, 40, 10), (7, 20, 1.5, 0.8, 0.0, 512, 400, 40, 10)])
