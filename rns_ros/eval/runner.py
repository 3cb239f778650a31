"""Runs the protocol: for each dataset, setting, seed and B, sample the support, build the support
memory, and score every method on the test images.

Dense features (and region partitions) of the test images, the support images' class features and
the text features come from the on-disk FeatureCache, so they are computed once and shared by all
settings, seeds, B values and methods. Each finished (dataset, setting, method, B, seed) is written
to <out>/runs/... with a fingerprint of everything that determines it; a re-run with the same
fingerprint reuses it (resumable), a changed one recomputes it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from rns_ros.eval.cache import FeatureCache, LabelIndex, atomic_write_bytes
from rns_ros.eval.datasets import IGNORE_INDEX, SegmentationDataset, dataset_class
from rns_ros.eval.datasets.cross import RemappedSupport
from rns_ros.eval.methods import Method, MethodOptions, build_method
from rns_ros.eval.metrics import ConfusionMatrix, PanopticQuality
from rns_ros.core.regions.proposals import proposal_input
from rns_ros.eval.queries import MODES, QuerySet, oracle_queries, patch_queries, region_queries
from rns_ros.eval.sampling import SamplingConfig, SupportSample, paper_seeds, sample_support_lazily
from rns_ros.eval.settings import SupportSetting


PROTOCOLS = (None, "paper")
# The paper's B per setting kind: full support B in {1, 5, 10, 20} (Fig. 3, Table 4), partial
# visual support B = 3, partial textual support B = 1 (Fig. 4, Table 3).
PAPER_SHOTS: dict[str, tuple[int, ...]] = {"full": (1, 5, 10, 20), "no-text": (1, 5, 10, 20),
                                           "partial-visual": (3,), "partial-text": (1,)}


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation run (what `rns-eval` parses its arguments into)."""

    datasets: tuple[str, ...]  # dataset names (see rns_ros.eval.datasets.DATASETS)
    root: str  # a dataset folder, or a parent holding several in their usual folder names
    out: str  # output folder: results.json, results.md, plots, runs/ (resume state)
    methods: tuple[str, ...] = ("zero-shot", "rns")
    shots: tuple[int, ...] = (1, 5)  # B values
    seeds: tuple[int, ...] | None = (0,)  # sampling seeds (averaged); None = the paper's per dataset
    settings: tuple[str, ...] = ("full",)  # SupportSetting specs
    mode: str = "patch"  # "patch", "region" (SAM 2 proposals) or "oracle" (ground-truth segments)
    backbone: str = "openclip-vit-b16"  # build_backbone preset name
    checkpoint: str | None = None  # local weights file for the backbone
    device: str = "cpu"
    split: str | None = None  # scored split (None = the dataset's protocol split)
    support_split: str | None = None  # split the support is drawn from (None = train)
    support_dataset: str | None = None  # draw the support from another dataset (None = the scored one)
    support_root: str | None = None  # root of that dataset (None = `root`)
    protocol: str | None = None  # "paper": B values per setting (PAPER_SHOTS) instead of `shots`
    max_images: int | None = None  # score only the first N test images (quick runs)
    cache_dir: str | None = None  # feature cache (None = <out>/cache)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    method_options: MethodOptions = field(default_factory=MethodOptions)
    proposal: dict[str, Any] = field(default_factory=dict)  # ProposalConfig overrides (region mode)
    progress: bool = True  # tqdm progress bars
    plots: bool = True  # write the PNG plots (needs matplotlib, the 'eval' extra)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if not self.datasets or not self.methods or self.seeds == ():
            raise ValueError("give at least one dataset, one method and one seed")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.support_dataset is not None:
            dataset_class(self.support_dataset)
        if any(b < 1 for b in self.shots):
            raise ValueError(f"shots (B) must be >= 1, got {list(self.shots)}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        for spec in self.settings:
            SupportSetting.parse(spec)
        for name in self.datasets:
            dataset_class(name)
        for name in self.methods:
            build_method(name, self.method_options)

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out) / "cache"

    def shots_for(self, setting: SupportSetting) -> tuple[int, ...]:
        """B values of a setting: `shots`, or the paper's for that kind under --protocol paper."""
        if not setting.uses_visual:
            return (0,)
        return PAPER_SHOTS[setting.kind] if self.protocol == "paper" else self.shots

    def seeds_for(self, dataset: str, setting: SupportSetting) -> tuple[int, ...]:
        if self.seeds is not None:
            return self.seeds
        return paper_seeds(dataset, partial=setting.kind.startswith("partial-"))


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _percent(x: float) -> float | None:
    return None if x != x else round(100.0 * float(x), 4)  # NaN -> None (JSON has no NaN)


PARTITION_INPUT = "proposal_input"  # SAM 2 sees core.regions' proposal_input of the frame (the backbone's resize)


def proposer_identity(proposer) -> str:
    ident = getattr(proposer, "identity", None)
    if isinstance(ident, str):
        return ident
    config = getattr(proposer, "config", None)
    if dataclasses.is_dataclass(config):
        fields = {k: v for k, v in dataclasses.asdict(config).items()
                  if k not in ("device", "points_per_batch")}  # speed-only settings
        return f"{type(proposer).__name__}:{json.dumps(fields, sort_keys=True, default=str)}"
    return type(proposer).__name__


class DatasetRun:
    """Everything of one dataset shared by its settings, seeds and methods."""

    def __init__(self, config: EvalConfig, name: str, backbone, proposer=None,
                 log: Callable[[str], None] = print) -> None:
        cls = dataset_class(name)
        self.config = config
        self.log = log
        self.test: SegmentationDataset = cls(config.root, config.split or cls.eval_split)
        support_cls = dataset_class(config.support_dataset) if config.support_dataset else cls
        self.support: SegmentationDataset = support_cls(config.support_root or config.root,
                                                         config.support_split or support_cls.support_split)
        if support_cls is not cls:  # cross-dataset support: its labels in the scored dataset's classes
            self.support = RemappedSupport(self.support, self.test.class_names, self.test.name)
        self.test_ids = self.test.ids[: config.max_images] if config.max_images else list(self.test.ids)
        self.backbone = backbone
        self.proposer = proposer
        self.cache = FeatureCache(config.cache_root, backbone.identity, device=backbone.device)
        self.labels = LabelIndex(config.cache_root, self.support)
        self.names = list(self.test.class_names)
        self.text = self.cache.text(self.names, lambda: backbone.encode_text(self.names).float())
        self.num_classes = len(self.names)

    # -- features --------------------------------------------------------------------------------
    def _dense_key(self, image_id: str) -> str:
        return f"{self.test.split}/{image_id}"

    def dense(self, image_id: str, image: np.ndarray | None = None):
        return self.cache.dense(self.test.image_namespace, self._dense_key(image_id),
                                lambda: self.backbone.encode_image(
                                    image if image is not None else self.test.load_image(image_id)))

    def partition_identity(self) -> str:
        """What a cached partition depends on: the proposer and the image it was given (partitions
        cached when SAM 2 got a PIL-resized copy must not be taken for these)."""
        return f"{proposer_identity(self.proposer)}|input={PARTITION_INPUT}"

    def partition(self, image_id: str, dense) -> np.ndarray:
        """Region partition (H', W') of the resized test image (region mode); SAM 2 sees exactly the
        array the Segmenter gives it (`proposal_input`: the backbone's resize, not another one)."""
        return self.cache.partition(
            self.partition_identity(), self.test.image_namespace, self._dense_key(image_id),
            lambda: self.proposer.partition(proposal_input(self.test.load_image(image_id), dense)))

    def queries(self, image_id: str, labels: np.ndarray) -> QuerySet:
        dense = self.dense(image_id)
        if self.config.mode == "patch":
            return patch_queries(dense)
        if self.config.mode == "oracle":
            return oracle_queries(dense, labels)
        return region_queries(dense, self.partition(image_id, dense))

    def extract_test_features(self) -> None:
        """Fill the cache for every test image (one pass; later passes only read). Entries already
        on disk are not read here, so a resumed run starts at once."""
        region = self.config.mode == "region"
        for image_id in tqdm(self.test_ids, desc=f"{self.test.name}: test features",
                             disable=not self.config.progress):
            key = self._dense_key(image_id)
            have_dense = self.cache.exists("dense", self.test.image_namespace, key)
            have_regions = not region or self.cache.exists(
                "regions", self.test.image_namespace, key, self.partition_identity())
            if have_dense and have_regions:
                continue
            dense = self.dense(image_id)
            if region:
                self.partition(image_id, dense)

    def support_features(self, image_id: str) -> tuple[torch.Tensor, list[int]]:
        """Per-image class features of a support image: ((m, d), dataset class indices)."""
        def compute():
            from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar
            labels = self.support.load_labels(image_id).astype(np.int64)
            ids = np.where(labels == IGNORE_INDEX, 0, labels + 1)  # memory-style ids: 0 = unlabelled
            feats, class_ids = encode_exemplar(self.backbone, Exemplar(self.support.load_image(image_id), ids))
            return feats, [c - 1 for c in class_ids]
        return self.cache.support_features(self.support.name, f"{self.support.split}/{image_id}", compute)

    # -- support ---------------------------------------------------------------------------------
    def sample(self, shots: int, seed: int) -> SupportSample:
        return sample_support_lazily(
            self.support.ids, lambda ids: self.labels.presence(ids, progress=self.config.progress),
            self.num_classes, shots, seed, self.config.sampling)

    def build_memory(self, sample: SupportSample | None, setting: SupportSetting, seed: int):
        """The support memory of one run: class i of the dataset is memory class id i + 1."""
        from rns_ros.core.memory.support import SupportMemory
        memory = SupportMemory(dim=self.backbone.dim, device=self.backbone.device,
                               backbone_identity=self.backbone.identity)
        no_text = setting.classes_without_text(self.num_classes, seed)
        no_visual = setting.classes_without_visual(self.num_classes, seed)
        for index, name in enumerate(self.names):
            cid = memory.add_class(name, text_feature=None if index in no_text else self.text[index])
            assert cid == index + 1, "SupportMemory is expected to number classes 1, 2, ..."
        for image_id in (sample.image_ids if sample is not None else ()):
            feats, classes = self.support_features(image_id)
            keep = [row for row, c in enumerate(classes) if c not in no_visual]
            if keep:
                memory.add_image_features(feats[keep], [classes[r] + 1 for r in keep])
        return memory

    def fingerprint(self, setting: SupportSetting, method: Method, shots: int, seed: int) -> dict:
        return {
            "dataset": self.test.name, "split": self.test.split, "support_split": self.support.split,
            "root": str(Path(self.config.root).resolve()), "test_ids": _digest(self.test_ids),
            "support_dataset": self.support.name, "support_root": str(Path(self.support.root).resolve()),
            "backbone": self.backbone.identity, "mode": self.config.mode,
            "proposer": self.partition_identity() if self.config.mode == "region" else None,
            "setting": setting.name, "shots": shots, "seed": seed, "method": method.describe(),
            "sampling": dataclasses.asdict(self.config.sampling),
        }

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, methods: list[Method], memory, desc: str) -> dict[str, dict]:
        """Run `methods` on every test image; per method: confusion, PQ, seconds, error."""
        state = {m.name: {"confusion": ConfusionMatrix(self.num_classes),
                          "panoptic": PanopticQuality(self.num_classes), "seconds": 0.0, "error": None}
                 for m in methods}
        for m in methods:
            try:
                t0 = time.perf_counter()
                m.prepare(memory)
                state[m.name]["seconds"] += time.perf_counter() - t0
            except ValueError as err:
                state[m.name]["error"] = str(err)
        for image_id in tqdm(self.test_ids, desc=desc, disable=not self.config.progress, leave=False):
            labels = self.test.load_labels(image_id)
            queries = self.queries(image_id, labels)
            instances = self.test.load_instances(image_id) if queries.mode != "patch" else None
            for m in methods:
                s = state[m.name]
                if s["error"] is not None:
                    continue
                t0 = time.perf_counter()
                try:
                    with torch.no_grad():
                        probs = m.predict(queries.features, memory)
                except ValueError as err:
                    s["error"] = str(err)
                    continue
                s["seconds"] += time.perf_counter() - t0
                if queries.mode == "patch":
                    s["confusion"].update(queries.label_map(probs), labels)
                else:
                    region_class, prediction = queries.region_classes(probs)
                    s["confusion"].update(prediction, labels)
                    self._update_panoptic(s["panoptic"], queries, region_class, labels, instances)
        return state

    @staticmethod
    def _update_panoptic(pq: PanopticQuality, queries: QuerySet, region_class: dict[int, int],
                         labels: np.ndarray, instances: np.ndarray | None) -> None:
        """Predicted segments = the regions; ground-truth segments = the dataset's instances when
        it has them, otherwise one segment per class present (semantic-only ground truth)."""
        void = labels == IGNORE_INDEX
        if instances is None:
            gt_segments = labels.astype(np.int64)
            gt_classes = {int(c): int(c) for c in np.unique(labels) if c != IGNORE_INDEX}
        else:
            gt_segments = instances
            gt_classes = {}
            for seg in np.unique(instances[~void]):
                if seg == 0:
                    continue
                values, counts = np.unique(labels[(instances == seg) & ~void], return_counts=True)
                gt_classes[int(seg)] = int(values[np.argmax(counts)])
        pq.update(queries.segments, region_class, gt_segments, gt_classes, void)

    def record(self, setting: SupportSetting, method: Method, shots: int, seed: int,
               sample: SupportSample | None, result: dict) -> dict:
        rec: dict[str, Any] = {
            "dataset": self.test.name, "split": self.test.split, "setting": setting.name,
            "method": method.name, "shots": shots, "seed": seed, "mode": self.config.mode,
            "num_images": len(self.test_ids), "seconds": round(result["seconds"], 3),
        }
        if result["error"] is not None:
            return {**rec, "status": "error", "reason": result["error"]}
        conf: ConfusionMatrix = result["confusion"]
        iou = conf.per_class_iou()
        rec.update(status="ok", miou=_percent(conf.miou()), pixel_accuracy=_percent(conf.pixel_accuracy()),
                   per_class_iou={n: _percent(v) for n, v in zip(self.names, iou)})
        groups = setting.class_groups(self.num_classes, seed)
        if groups:
            rec["groups"] = {g: {"classes": [self.names[c] for c in cs], "miou": _percent(conf.miou(cs))}
                             for g, cs in groups.items()}
        if self.config.mode != "patch":
            rec["panoptic"] = {k: _percent(v) for k, v in result["panoptic"].summary().items()}
        if sample is not None:
            rec["support"] = {
                "images": list(sample.image_ids),
                "images_per_class": {self.names[c]: n for c, n in sample.images_per_class.items()},
                "short_classes": [self.names[c] for c in sample.short_classes],
            }
        return rec


def _run_path(out: Path, rec_key: tuple) -> Path:
    dataset, setting, method, shots, seed = rec_key
    return out / "runs" / dataset / setting.replace(":", "-") / method / f"B{shots}-seed{seed}.json"


def _load_done(path: Path, fingerprint: dict) -> dict | None:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stored["record"] if stored.get("fingerprint") == json.loads(json.dumps(fingerprint)) else None


def _save(path: Path, fingerprint: dict, record: dict) -> None:
    data = json.dumps({"fingerprint": fingerprint, "record": record}, indent=1).encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def _reuse_or_plan(run: DatasetRun, setting: SupportSetting, seed: int, shots: int, methods: list[Method],
                   support_free: dict[str, dict], records: list[dict]) -> list[Method]:
    """Append the records that need no work (done before with the same fingerprint, skipped, or
    support-free and already computed for another B); return the methods left to run."""
    todo: list[Method] = []
    for m in methods:
        fp = run.fingerprint(setting, m, shots, seed)
        path = _run_path(Path(run.config.out), (run.test.name, setting.name, m.name, shots, seed))
        done = _load_done(path, fp)
        skip = _why_not(m, setting)
        if done is not None:
            records.append(done)
            if not m.uses_support:
                support_free[m.name] = done
        elif skip:
            records.append({"dataset": run.test.name, "setting": setting.name, "method": m.name,
                            "shots": shots, "seed": seed, "mode": run.config.mode,
                            "status": "skipped", "reason": skip})
        elif not m.uses_support and m.name in support_free:
            rec = {**support_free[m.name], "shots": shots}
            _save(path, fp, rec)
            records.append(rec)
        else:
            todo.append(m)
    return todo


def run_dataset(config: EvalConfig, name: str, backbone, proposer=None,
                log: Callable[[str], None] = print) -> list[dict]:
    """Every record (one per setting, method, B and seed) of dataset `name`."""
    run = DatasetRun(config, name, backbone, proposer, log)
    run.extract_test_features()
    records: list[dict] = []
    for spec in config.settings:
        setting = SupportSetting.parse(spec)
        options = dataclasses.replace(config.method_options, no_text=not setting.uses_text)
        for seed in config.seeds_for(run.test.name, setting):
            support_free: dict[str, dict] = {}  # results that do not depend on B
            for shots in config.shots_for(setting):
                methods = [build_method(m, options) for m in config.methods]
                todo = _reuse_or_plan(run, setting, seed, shots, methods, support_free, records)
                if not todo:
                    continue
                sample = run.sample(shots, seed) if shots > 0 else None
                memory = run.build_memory(sample, setting, seed)
                desc = f"{run.test.name} {setting.name} B={shots} seed={seed}"
                state = run.score(todo, memory, desc)
                for m in todo:
                    rec = run.record(setting, m, shots, seed, sample if m.uses_support else None, state[m.name])
                    records.append(rec)
                    if rec["status"] == "error":  # not saved: a re-run tries again
                        log(f"[rns-eval] {desc} {m.name}: {rec['reason']}")
                        continue
                    _save(_run_path(Path(config.out), (run.test.name, setting.name, m.name, shots, seed)),
                          run.fingerprint(setting, m, shots, seed), rec)
                    if not m.uses_support:
                        support_free[m.name] = rec
                    log(f"[rns-eval] {desc} {m.name}: mIoU {rec['miou']:.2f}" if rec["miou"] is not None
                        else f"[rns-eval] {desc} {m.name}: no class scored")
    return records


def _why_not(method: Method, setting: SupportSetting) -> str | None:
    if method.needs_text and not setting.uses_text:
        return f"{method.name} needs class names; setting {setting.name} has none"
    if method.needs_visual and not setting.uses_visual:
        return f"{method.name} needs visual support; setting {setting.name} has none"
    return None


def build_region_proposer(config: EvalConfig):
    from rns_ros.core.regions.proposals import ProposalConfig, RegionProposer
    options = {"device": config.device, **config.proposal}
    return RegionProposer(ProposalConfig(**options))


def _random_weights(config: EvalConfig, backbone) -> bool:
    """True for test-only backbones (random weights), whose numbers mean nothing."""
    flag = getattr(backbone, "test_only", None)
    if isinstance(flag, bool):
        return flag
    try:
        from rns_ros.core.backbones import BACKBONE_PRESETS
    except ImportError:
        return False
    preset = BACKBONE_PRESETS.get(config.backbone)
    return bool(preset is not None and preset.test_only)


def run_evaluation(config: EvalConfig, backbone=None, proposer=None,
                   log: Callable[[str], None] = print) -> dict:
    """Run everything `config` asks for, write <out>/results.json, results.md and the plots, and
    return the results dict. `backbone` / `proposer` may be given (tests); otherwise they are built
    from the config (the proposer only in region mode)."""
    from rns_ros.eval.report import build_results, write_outputs
    if backbone is None:
        from rns_ros.core.backbones import build_backbone
        backbone = build_backbone(config.backbone, device=config.device, checkpoint=config.checkpoint)
    if config.mode == "region" and proposer is None:
        proposer = build_region_proposer(config)
    records: list[dict] = []
    for name in config.datasets:
        records.extend(run_dataset(config, name, backbone, proposer, log))
    results = build_results(config, backbone.identity, records, random_weights=_random_weights(config, backbone))
    write_outputs(results, Path(config.out), log=log, plots=config.plots)
    return results
