"""What goes wrong with a runtime, as errors that name the fix the way the entry point in use sets
it (rns_ros.core.advice): `{runtime=...}`, `{onnx_model=...}`, `{precision=...}`, `{device=...}`."""
from __future__ import annotations

import importlib

from rns_ros.core.advice import AdvisedError

INSTALL_HINT = "pip install 'rns_ros[runtimes]' (scripts/setup.sh installs it)"


class RuntimeSettingError(AdvisedError, ValueError):
    """A runtime asked for in a precision or on a device it does not compute in."""


class RuntimeUnavailableError(AdvisedError, RuntimeError):
    """A runtime's package or execution provider is not there (e.g. TensorRT asked for on a CPU machine)."""


class ExportMissingError(AdvisedError, FileNotFoundError):
    """No exported encoder where a setting points."""


class ExportMismatchError(AdvisedError, ValueError):
    """An exported encoder that is corrupt, or was made from other weights or for another precision."""


def import_runtime_package(module: str, runtime: str):
    """`import module`, or a RuntimeUnavailableError saying how to install it and what to use meanwhile."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeUnavailableError(f"runtime {runtime!r} needs the {module!r} package ({exc}): "
                                      f"{INSTALL_HINT}; or use {{runtime=torch}}") from None
