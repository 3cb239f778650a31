"""TF32 on CUDA: on for the models where the `cuda` profile asks for it, never inside the adapter.

    allow_tf32()                      # process-wide: fp32 matmuls may use TF32
    with exact_fp32(queries.device):  # the adapter: full fp32 matmuls for the duration, then restored
        ...

TF32 (10 mantissa bits) speeds up the fp32 operations that stay fp32 under bf16 autocast (the
`cuda` profile, rns_ros.core.profiles), at a precision the models do not notice. The test-time
adapter is compared with the plain loop at max |dp| <= 1e-4, which TF32 would break, so it runs
every matmul (retrieval, problem building, the steps, the prediction) in full fp32 whatever the
process-wide setting: `exact_fp32` switches TF32 off while at least one adapter call is inside it
(a count, so nested and concurrent calls restore the setting only when the last one leaves) and
restores it after. A CUDA graph captured inside keeps its fp32 kernels on every replay.

torch's switch is process-wide: while an adapter runs, fp32 matmuls of other threads (a SAM 2
prompt, say) run in full fp32 too: slower, never less exact. Only torch's newer API
(`torch.backends.cuda.matmul.fp32_precision`) is used: torch refuses to read the legacy
`allow_tf32` flags once the newer one was set.
"""
from __future__ import annotations

import contextlib
import threading

import torch

_lock = threading.Lock()
_inside = 0  # adapter calls inside exact_fp32 now
_saved: str | None = None  # the matmul setting before the first of them entered


def allow_tf32(on: bool = True) -> str:
    """Let fp32 matmuls on CUDA (cuBLAS) use TF32, process-wide (on=False: back to torch's default,
    full fp32); returns a line for the log. Inside an `exact_fp32` block the change takes effect
    when the block ends. (cuDNN convolutions use TF32 by torch's own default already.)"""
    global _saved
    value = "tf32" if on else "none"
    with _lock:
        if _inside:
            _saved = value
        else:
            torch.backends.cuda.matmul.fp32_precision = value
    return ("TF32 on for fp32 matmuls outside the adapter (which keeps full fp32)" if on
            else "TF32 off for fp32 matmuls (torch's default)")


def tf32_matmuls() -> bool:
    """Whether fp32 matmuls on CUDA may use TF32 now."""
    precision = torch.backends.cuda.matmul.fp32_precision
    if precision == "none":  # defers to torch.set_float32_matmul_precision
        return torch.get_float32_matmul_precision() != "highest"
    return precision == "tf32"


@contextlib.contextmanager
def exact_fp32(device: torch.device | str):
    """Full fp32 CUDA matmuls for the block when `device` is a CUDA device (elsewhere nothing
    changes: TF32 is a CUDA setting). See the module docstring for the process-wide effect."""
    if torch.device(device).type != "cuda":
        yield
        return
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = torch.backends.cuda.matmul.fp32_precision
            torch.backends.cuda.matmul.fp32_precision = "ieee"
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                torch.backends.cuda.matmul.fp32_precision = _saved
                _saved = None
