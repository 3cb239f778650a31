"""Building SAM 2 models: the one module of the engine that imports `sam2`.

`import sam2` initialises Hydra globally, so every sam2 import here happens inside a function,
never when `rns_ros` is imported. Everything else in the engine gets SAM 2 objects from here.

Two ways to name a model:
- a preset: "sam2.1-hiera-tiny", "sam2.1-hiera-small", "sam2.1-hiera-base-plus",
  "sam2.1-hiera-large", or "test-tiny" (TEST-ONLY, see below);
- a sam2 config NAME such as "configs/sam2.1/sam2.1_hiera_l.yaml". This is a name inside the
  installed `sam2` package (Hydra's config search path), **not a file path**: a YAML file of your
  own is not accepted.

Real weights come from a local checkpoint file (`sam2.1_hiera_large.pt` etc., from the SAM 2.1
release, see `CHECKPOINT_URL`); nothing is ever downloaded. A missing file is reported before any
model is built.

"test-tiny" is hiera-tiny shrunk to a 256 px input and a 5-block, 32-wide trunk, randomly
initialised with a fixed seed. It exists so tests can run the real SAM 2 code paths in
milliseconds; its masks mean nothing. Never use it for results.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rns_ros.core.advice import MissingWeightsError

DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/{file}"
TEST_TINY_SEED = 0


@dataclass(frozen=True)
class Sam2Preset:
    """A named SAM 2 model: a sam2 config name, Hydra overrides, and its release checkpoint."""

    config_name: str  # name inside the sam2 package, e.g. "configs/sam2.1/sam2.1_hiera_t.yaml"
    checkpoint_file: str | None  # file name in the SAM 2.1 release; None: random init only
    overrides: tuple[str, ...] = ()  # Hydra overrides applied on top of the config
    test_only: bool = False  # random weights, never for results


# Input 256 instead of 1024 and a 5-block trunk of width 32: ~0.4 s to build, ms per prompt.
# Hiera puts query pooling on the first block of stages 2-4, and a global-attention block must
# not be one of those, hence stages [1, 1, 2, 1] with block 3 global.
TEST_TINY_OVERRIDES = (
    "++model.image_size=256",
    "++model.image_encoder.trunk.embed_dim=32",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[256,128,64,32]",
    "++model.memory_attention.num_layers=1",
)

SAM2_PRESETS: dict[str, Sam2Preset] = {
    "sam2.1-hiera-tiny": Sam2Preset("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "sam2.1-hiera-small": Sam2Preset("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "sam2.1-hiera-base-plus": Sam2Preset("configs/sam2.1/sam2.1_hiera_b+.yaml",
                                         "sam2.1_hiera_base_plus.pt"),
    "sam2.1-hiera-large": Sam2Preset("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
    "test-tiny": Sam2Preset("configs/sam2.1/sam2.1_hiera_t.yaml", None, TEST_TINY_OVERRIDES,
                            test_only=True),
}

# Release checkpoint of each config name, so errors can say which file to fetch.
_CHECKPOINT_FOR_CONFIG = {p.config_name: p.checkpoint_file for p in SAM2_PRESETS.values()
                          if p.checkpoint_file is not None}
_CHECKPOINT_FOR_CONFIG.update({
    "configs/sam2/sam2_hiera_t.yaml": "sam2_hiera_tiny.pt (SAM 2.0 release 072824)",
    "configs/sam2/sam2_hiera_s.yaml": "sam2_hiera_small.pt (SAM 2.0 release 072824)",
    "configs/sam2/sam2_hiera_b+.yaml": "sam2_hiera_base_plus.pt (SAM 2.0 release 072824)",
    "configs/sam2/sam2_hiera_l.yaml": "sam2_hiera_large.pt (SAM 2.0 release 072824)",
})


def _sam2_package_dir() -> Path:
    """The installed sam2 package folder, found without importing (and so initialising) it."""
    spec = importlib.util.find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sam2 is not installed: run scripts/setup.sh (it pins sam2==1.1.0)")
    return Path(list(spec.submodule_search_locations)[0])


def available_config_names() -> list[str]:
    """Every model config name the installed sam2 package offers (sorted)."""
    root = _sam2_package_dir()
    return sorted(str(p.relative_to(root)) for p in (root / "configs").glob("sam2*/*.yaml"))


def resolve_model(model: str) -> Sam2Preset:
    """Turn a preset name or a sam2 config name into a `Sam2Preset`; cheap, imports nothing.

    Raises ValueError for an unknown name, and for a file path (sam2 takes config *names*).
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"SAM 2 model must be a preset or config name (str), got {model!r}")
    if model in SAM2_PRESETS:
        return SAM2_PRESETS[model]
    if (_sam2_package_dir() / model).is_file() and model.startswith("configs/"):
        return Sam2Preset(model, _CHECKPOINT_FOR_CONFIG.get(model))
    hint = ""
    if Path(model).is_file():
        hint = (" It is a file path, but sam2's config argument is a config NAME inside the sam2"
                " package (Hydra search path), not a path: own YAML files are not supported.")
    raise ValueError(
        f"unknown SAM 2 model {model!r}.{hint} Use a preset ({', '.join(SAM2_PRESETS)}) or a "
        f"config name such as {DEFAULT_CONFIG!r}; available names: {available_config_names()}"
    )


def _where_to_get(checkpoint_file: str | None) -> str:
    if checkpoint_file is None:
        return "the SAM 2 release (https://github.com/facebookresearch/sam2#download-checkpoints)"
    if checkpoint_file.endswith(".pt"):
        return (f"the SAM 2.1 release: {CHECKPOINT_URL.format(file=checkpoint_file)} "
                f"(or the Hugging Face repo facebook/{checkpoint_file[:-3].replace('_', '-')})")
    return f"{checkpoint_file}, see https://github.com/facebookresearch/sam2#download-checkpoints"


def check_checkpoint(model: str, checkpoint: str | Path | None, *,
                     random_weights: bool = False) -> Path | None:
    """Validate the (model, checkpoint) pair without building anything.

    Returns the checkpoint path (None for random weights). Raises FileNotFoundError naming the
    missing file and where to get it; ValueError for a missing or superfluous checkpoint.
    """
    preset = resolve_model(model)
    if preset.test_only:
        if checkpoint is not None:
            raise ValueError(f"{model!r} is a random-init TEST-ONLY model and takes no checkpoint "
                             f"(got {checkpoint!r}); use a real preset such as 'sam2.1-hiera-large'")
        return None
    if checkpoint is None:
        if random_weights:
            return None
        raise MissingWeightsError(
            f"SAM 2 model {model!r} needs weights: pass {{regions.checkpoint=/path/to/"
            f"{preset.checkpoint_file or '<checkpoint>.pt'}}}, downloaded from "
            f"{_where_to_get(preset.checkpoint_file)}. (In Python, random_weights=True builds it "
            f"untrained, for compute-only benchmarks.)"
        )
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"SAM 2 checkpoint not found: {str(path)!r}"
            + (" (a directory, not a file)" if path.is_dir() else "")
            + f". Expected the file for {preset.config_name}, get it from "
            f"{_where_to_get(preset.checkpoint_file)}"
        )
    return path


def build_sam2_model(config: str = DEFAULT_CONFIG, checkpoint: str | Path | None = None,
                     device: str | torch.device = "cpu", *, random_weights: bool = False,
                     apply_postprocessing: bool = False) -> torch.nn.Module:
    """Build a SAM 2 model (a `sam2.modeling.sam2_base.SAM2Base`) in eval mode on `device`.

    - `config`: a preset name or a sam2 config NAME (see the module docstring); not a file path.
    - `checkpoint`: local `.pt` file of the SAM 2 release matching `config`. Required for real
      presets unless `random_weights=True` (compute-only benchmarks); refused for "test-tiny".
    - `apply_postprocessing`: sam2's own flag (its default is True) that makes the single-mask
      decoder fall back to the best multimask output when unstable. Off here: RNS uses the
      decoder's single mask per point, no post-processing.
    All checks (name, file, device) run before sam2 is imported or anything is built.
    """
    preset = resolve_model(config)
    ckpt_path = check_checkpoint(config, checkpoint, random_weights=random_weights)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use 'cpu'")

    from hydra import compose  # noqa: PLC0415  (lazy: importing sam2 initialises Hydra)
    from hydra.utils import instantiate  # noqa: PLC0415
    from omegaconf import OmegaConf  # noqa: PLC0415

    import sam2  # noqa: F401, PLC0415  (registers sam2's configs with Hydra)

    overrides = list(preset.overrides)
    if apply_postprocessing:
        overrides += [
            "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
            "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
            "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        ]
    cfg = compose(config_name=preset.config_name, overrides=overrides)
    OmegaConf.resolve(cfg)
    # Random init happens on a forked RNG so that building a model never moves the caller's seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TEST_TINY_SEED)
        model = instantiate(cfg.model, _recursive_=True)
    if ckpt_path is not None:
        _load_weights(model, ckpt_path, preset.config_name)
    return model.to(device).eval()


def _load_weights(model: torch.nn.Module, path: Path, config_name: str) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{str(path)!r} is not a SAM 2 checkpoint (no 'model' state dict inside)")
    result = model.load_state_dict(state["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit config {config_name!r}: "
            f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]}). "
            f"Pick the config of the same size, e.g. sam2.1_hiera_large.pt -> {DEFAULT_CONFIG!r}"
        )


def _backbone_feature_sizes(model: torch.nn.Module) -> list[tuple[int, int]]:
    # sam2's image predictor hard-codes these for 1024 input; the Hiera+FPN levels it keeps
    # have strides 4, 8 and 16.
    s = int(model.image_size)
    return [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]


@contextlib.contextmanager
def _eager_transforms():
    """Build sam2's input transforms (resize + normalise) as plain modules, not TorchScript.

    sam2 wraps them in the deprecated `torch.jit.script`, which costs ~2.5 s per predictor on a
    CPU and warns; the eager modules compute bit-identical inputs. `torch.jit.script` is
    replaced only while a predictor is being constructed.
    """
    script = torch.jit.script
    torch.jit.script = lambda module, *args, **kwargs: module
    try:
        yield
    finally:
        torch.jit.script = script


def build_image_predictor(model: torch.nn.Module, *, mask_threshold: float = 0.0):
    """A `sam2.sam2_image_predictor.SAM2ImagePredictor` for `model`, valid at any input size."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: PLC0415

    with _eager_transforms():
        predictor = SAM2ImagePredictor(model, mask_threshold=mask_threshold)
    predictor._bb_feat_sizes = _backbone_feature_sizes(model)
    return predictor


def build_mask_generator(model: torch.nn.Module, *, points_per_side: int, points_per_batch: int,
                         pred_iou_thresh: float, stability_score_thresh: float,
                         stability_score_offset: float, box_nms_thresh: float,
                         multimask_output: bool, min_mask_region_area: int):
    """A `sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator` with exactly these settings,
    which also hands its masks over as one tensor on the model's device (`mask_tensor(image)`,
    see `_kept_masks_generator`).

    Every setting is a named argument here because sam2's constructor swallows unknown keyword
    arguments silently. No image crops (crop_n_layers=0), binary masks out, no mask-to-mask
    refinement.
    """
    with _eager_transforms():
        generator = _kept_masks_generator()(
            model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=0,
            min_mask_region_area=min_mask_region_area,
            output_mode="binary_mask",
            use_m2m=False,
            multimask_output=multimask_output,
        )
    generator.predictor._bb_feat_sizes = _backbone_feature_sizes(model)
    return generator


@functools.cache
def _kept_masks_generator():
    """sam2's `SAM2AutomaticMaskGenerator` with one method more, `mask_tensor(image)`: the masks
    `generate(image)` returns as numpy "segmentation" arrays, same masks, same order, as one
    (R, H, W) bool tensor on the model's device (issue 27). `generate` encodes every kept mask to
    run lengths through the host (sam2 1.1.0, automatic_mask_generator.py, `_process_batch`:
    `mask_to_rle_pytorch`) and decodes them again on the host (`generate`: `rle_to_mask`);
    `mask_tensor` keeps the thresholded masks where the decoder made them. The filters are sam2's
    own `_process_batch` steps (use_m2m=False), the crop and NMS sam2's own `_process_crop`."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator  # noqa: PLC0415
    from sam2.utils.amg import (MaskData, batched_mask_to_box, calculate_stability_score,  # noqa: PLC0415
                                generate_crop_boxes, is_box_near_crop_edge, uncrop_masks)

    class KeptMasksGenerator(SAM2AutomaticMaskGenerator):
        _keep_masks = False

        def mask_tensor(self, image: np.ndarray) -> torch.Tensor:
            orig_size = image.shape[:2]
            crop_boxes, layers = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
            if len(crop_boxes) != 1 or self.use_m2m:
                raise RuntimeError("mask_tensor supports one crop without mask-to-mask refinement")
            self._keep_masks = True
            try:
                data = self._process_crop(image, crop_boxes[0], layers[0], orig_size)
            finally:
                self._keep_masks = False
            return data["rles"]  # the masks themselves (see _process_batch)

        def _process_batch(self, points, im_size, crop_box, orig_size, normalize=False):
            if not self._keep_masks:
                return super()._process_batch(points, im_size, crop_box, orig_size, normalize)
            orig_h, orig_w = orig_size
            points = torch.as_tensor(points, dtype=torch.float32, device=self.predictor.device)
            in_points = self.predictor._transforms.transform_coords(points, normalize=normalize, orig_hw=im_size)
            in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
            masks, iou_preds, _ = self.predictor._predict(in_points[:, None, :], in_labels[:, None],
                                                          multimask_output=self.multimask_output, return_logits=True)
            data = MaskData(masks=masks.flatten(0, 1), iou_preds=iou_preds.flatten(0, 1),
                            points=points.repeat_interleave(masks.shape[1], dim=0))
            del masks
            if self.pred_iou_thresh > 0.0:
                data.filter(data["iou_preds"] > self.pred_iou_thresh)
            data["stability_score"] = calculate_stability_score(data["masks"], self.mask_threshold,
                                                                self.stability_score_offset)
            if self.stability_score_thresh > 0.0:
                data.filter(data["stability_score"] >= self.stability_score_thresh)
            data["masks"] = data["masks"] > self.mask_threshold
            data["boxes"] = batched_mask_to_box(data["masks"])
            keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
            if not torch.all(keep):
                data.filter(keep)
            # under the key sam2's _process_crop counts and filters along: the masks, not run lengths
            data["rles"] = uncrop_masks(data["masks"], crop_box, orig_h, orig_w)
            del data["masks"]
            return data

    return KeptMasksGenerator
