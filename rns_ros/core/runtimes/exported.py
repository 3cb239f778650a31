"""An exported dense encoder on disk: `encoder.onnx` plus `encoder.json`, the sidecar that says what
was exported, and the checks that a file really is the one a backbone needs.

    exported = read_export("/robot/onnx/openclip-vit-b16")        # ExportedEncoder
    exported.check_matches(backbone, precision="fp32")           # or an ExportMismatchError

The sidecar (JSON, one object):

    format        "rns_ros-dense-encoder/1"
    preset        the backbone preset it was exported from ("openclip-vit-b16", "test-tiny", ...)
    identity      the backbone's full identity at export (weights + preprocessing, informational)
    model_identity  the weights alone (`WindowedBackbone.model_identity`): what must match
    resolution    the ResolutionConfig description at export (informational: the graph takes any
                  window size that is a multiple of the patch)
    mean, std     the input normalisation the crops get before the encoder (must match)
    patch_size, dim  (must match)
    precision     of the file: "fp32" (OpenVINO and TensorRT lower it themselves), "int8" (ONNX
                  Runtime's dynamic quantization) or "fp16"
    opset, input, output  ONNX opset; tensor names ("crops": (B, 3, H, W) float32 normalised,
                  "features": (B, H/p, W/p, d) float32, not normalised)
    file, bytes, sha256  the ONNX file and its digest (a truncated or altered file is refused)
    versions      torch / onnx / onnxscript / onnxruntime that made it

A check that fails raises an `AdvisedError` whose text names the fix as the entry point spells it
(rns_ros.core.advice): `{onnx_model=...}`, `{runtime=...}`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rns_ros.core.runtimes.errors import ExportMismatchError, ExportMissingError

FORMAT = "rns_ros-dense-encoder/1"
ONNX_NAME = "encoder.onnx"
SIDECAR_NAME = "encoder.json"
INPUT_NAME = "crops"
OUTPUT_NAME = "features"


@dataclass(frozen=True)
class ExportedEncoder:
    """The sidecar's fields (see the module docstring) and the folder holding both files."""

    preset: str
    identity: str
    model_identity: str
    resolution: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    patch_size: int
    dim: int
    precision: str
    opset: int
    sha256: str
    bytes: int
    file: str = ONNX_NAME
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME
    versions: dict = field(default_factory=dict)
    format: str = FORMAT
    folder: Path | None = None  # where it was read from (not written)

    @property
    def onnx_path(self) -> Path:
        assert self.folder is not None, "an ExportedEncoder read from disk knows its folder"
        return self.folder / self.file

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("folder")
        return json.dumps(data, indent=1) + "\n"

    def check_matches(self, backbone, precision: str) -> None:
        """Raise ExportMismatchError unless this export encodes `backbone`'s crops (same weights,
        normalisation, patch size and width) at file precision `precision`."""
        where = str(self.folder)
        fix = (f"export it again from these weights (`rns-export --backbone {self.preset} --out DIR` with the "
               "same checkpoint) and pass {onnx_model=DIR}, or leave onnx_model unset to export automatically")
        if self.model_identity != backbone.model_identity:
            raise ExportMismatchError(f"the ONNX encoder in {where} was exported from {self.model_identity!r}, "
                                      f"but the backbone is {backbone.model_identity!r}: {fix}")
        mine = dict(mean=self.mean, std=self.std, patch_size=self.patch_size, dim=self.dim)
        theirs = dict(mean=backbone.mean, std=backbone.std, patch_size=backbone.patch_size, dim=backbone.dim)
        for key, value in mine.items():
            if (tuple(value) if isinstance(value, (list, tuple)) else value) != theirs[key]:
                raise ExportMismatchError(f"the ONNX encoder in {where} has {key} {value}, the backbone "
                                          f"{theirs[key]}: {fix}")
        if self.precision != precision:
            raise ExportMismatchError(
                f"the ONNX encoder in {where} is {self.precision}, this runtime needs a {precision} file: "
                f"export one (`rns-export --backbone {self.preset} --precision {precision} --out DIR`) and "
                "pass {onnx_model=DIR}, or leave onnx_model unset to export automatically")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sidecar(exported: ExportedEncoder, folder: Path) -> None:
    """Write `encoder.json` atomically (a reader never sees half a sidecar)."""
    temporary = folder / (SIDECAR_NAME + ".partial")
    temporary.write_text(exported.to_json())
    temporary.replace(folder / SIDECAR_NAME)


def read_export(path: str | Path, *, verify: bool = True) -> ExportedEncoder:
    """The export in folder `path` (or the folder of `path` when it names the .onnx or .json file).

    `verify`: recompute the ONNX file's sha256 and compare with the sidecar's (about 1 s per
    350 MB). Raises ExportMissingError (no folder, file or sidecar) or ExportMismatchError
    (unreadable sidecar, wrong format, size or digest)."""
    folder = Path(path).expanduser()
    if folder.suffix in (".onnx", ".json"):
        folder = folder.parent
    fix = "export one with `rns-export --backbone PRESET --out DIR` and pass {onnx_model=DIR}, or leave " \
          "onnx_model unset to export automatically"
    sidecar = folder / SIDECAR_NAME
    if not sidecar.is_file():
        what = "does not exist" if not folder.exists() else f"holds no {SIDECAR_NAME}"
        raise ExportMissingError(f"ONNX encoder folder {str(folder)!r} {what}: {fix}")
    try:
        data = json.loads(sidecar.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
        exported = ExportedEncoder(**data, folder=folder)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ExportMismatchError(f"{str(sidecar)!r} is not an rns_ros encoder sidecar ({exc}): {fix}") from None
    onnx = exported.onnx_path
    if not onnx.is_file():
        raise ExportMissingError(f"{str(onnx)!r} (named by {SIDECAR_NAME}) does not exist: {fix}")
    size = onnx.stat().st_size
    if size != exported.bytes or (verify and file_sha256(onnx) != exported.sha256):
        raise ExportMismatchError(f"{str(onnx)!r} is not the file that was exported (size {size} vs "
                                  f"{exported.bytes} or sha256 differs: truncated or changed): {fix}")
    return exported
