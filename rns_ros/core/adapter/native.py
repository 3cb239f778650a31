"""The compiled kernel of the fast adapter's CPU steps (native/subspace_steps.c).

On a CPU the subspace step is a handful of tiny operations (tens of thousands of numbers each), so
issuing them one torch call at a time costs more in dispatch than in arithmetic. The C file runs
whole subspace steps in one call, and the softmax + residual of an exact step (torch's softmax
along the class axis of the class-major logits, plus the residual's addcmul, cost about as much as
one of the step's two matmuls) in one pass. It is compiled on first use with the system C compiler (the one that
building the package's ROS interfaces already needs: `$CC`, else `cc`, `gcc` or `clang`) for this
machine's CPU (-march=native), and cached as a shared library under
`$RNS_ROS_CACHE_DIR` (default `$XDG_CACHE_HOME/rns_ros`, i.e. ~/.cache/rns_ros: core/cache.py), keyed by the
source, the flags, the compiler's version and the CPU, so an edit, a new compiler or a home
directory shared with another machine never loads a stale or foreign build. The library is
written to a temporary name and renamed into place: concurrent first uses are safe.

`load()` returns the loaded kernel or raises `NativeUnavailable` with the reason (no compiler,
compile error); `fast.py` then falls back to torch operations (`AdapterConfig.fast_kernel`).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

import torch

from rns_ros.core.cache import cache_dir

SOURCE = Path(__file__).resolve().parent / "native" / "subspace_steps.c"
LANES = 8  # the kernel's vector width: rows and width are padded to multiples of it
# -fno-math-errno lets sqrtf become one vector instruction; no fast-math (the kernel's
# reductions and exp are written out, so it needs no reassociation licence)
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared")
_COMPILE_TIMEOUT_S = 120


class NativeUnavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here; the message says why."""


_SUBSPACE_TENSORS = ("params", "exp_avg", "exp_avg_sq", "basis", "coords_t", "held_logits", "held_grad",
                     "neg_target", "prob_scale", "residual", "projected", "coord_grad", "scratch")


class SubspaceProblem(ctypes.Structure):
    """Mirror of `struct rns_subspace` in native/subspace_steps.c (same order, same types)."""

    _fields_ = [(name, ctypes.c_int) for name in ("classes", "rows", "width", "rank")] + [
        (name, ctypes.c_void_p) for name in _SUBSPACE_TENSORS] + [
        (name, ctypes.c_float) for name in ("lr", "beta1", "beta2", "weight_decay", "eps")] + [
        ("decoupled", ctypes.c_int)]


def subspace_problem(tensors: dict, *, lr: float, betas: tuple[float, float], weight_decay: float,
                     eps: float, decoupled: bool) -> SubspaceProblem:
    """The kernel's view of `tensors` (named as the struct's pointer fields), after checking what
    the C code assumes: float32, contiguous, on the CPU, shapes consistent with params (C, W) and
    coords_t (R, M), M and W multiples of LANES. The struct keeps the tensors referenced."""
    classes, width = tensors["params"].shape
    rank, rows = tensors["coords_t"].shape
    shapes = dict(params=(classes, width), exp_avg=(classes, width), exp_avg_sq=(classes, width),
                  basis=(rank, width), coords_t=(rank, rows), held_logits=(classes, rows),
                  held_grad=(classes, width), neg_target=(classes, rows), prob_scale=(rows,),
                  residual=(classes, rows), projected=(classes, rank), coord_grad=(classes, rank),
                  scratch=(max(classes * width, 2 * rows),))
    if rows % LANES or width % LANES or min(classes, rank, rows, width) < 1:
        raise ValueError(f"subspace kernel: rows {rows} and width {width} must be positive multiples of "
                         f"{LANES}, classes {classes} and rank {rank} positive")
    _check_tensors("subspace kernel", {name: tensors[name] for name in _SUBSPACE_TENSORS}, shapes)
    problem = SubspaceProblem(classes=classes, rows=rows, width=width, rank=rank,
                              **{name: tensors[name].data_ptr() for name in _SUBSPACE_TENSORS},
                              lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
                              decoupled=int(decoupled))
    problem.tensors = dict(tensors)  # the struct holds raw pointers: keep what they point to alive
    return problem


def _check_tensors(what: str, tensors: dict, shapes: dict) -> None:
    """ValueError unless every tensor is contiguous float32 on the CPU with its shape in `shapes`
    (the C functions get raw pointers: anything else would be read as garbage)."""
    for name, tensor in tensors.items():
        if not (tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.is_contiguous()
                and tuple(tensor.shape) == shapes[name]):
            raise ValueError(f"{what}: {name} must be a contiguous float32 CPU tensor of shape "
                             f"{shapes[name]}, got {tensor.dtype} {tuple(tensor.shape)} on {tensor.device}")


class NativeKernel:
    """The loaded library's entry points, each taking a `SubspaceProblem` (by reference)."""

    def __init__(self, library: ctypes.CDLL, path: Path):
        self.path = path
        pointer = ctypes.POINTER(SubspaceProblem)
        for name, extra in (("rns_project", []), ("rns_row_pass", []),
                            ("rns_width_pass", [ctypes.c_int]), ("rns_steps", [ctypes.c_int, ctypes.c_int])):
            function = getattr(library, name)
            function.argtypes, function.restype = [pointer, *extra], None
            setattr(self, name.removeprefix("rns_"), function)
        self._softmax_residual = library.rns_softmax_residual
        self._softmax_residual.argtypes = [ctypes.c_int, ctypes.c_int] + [ctypes.c_void_p] * 4
        self._softmax_residual.restype = None

    def softmax_residual_call(self, logits: torch.Tensor, prob_scale: torch.Tensor,
                              neg_target: torch.Tensor) -> Callable[[], None]:
        """A call without arguments that turns the class-major logits (C, M) into the residual
        softmax_classes(logits) * prob_scale + neg_target, in place. Checked once here (float32,
        contiguous, CPU; prob_scale (M,), neg_target (C, M); M a multiple of LANES), so the per-step
        call costs only the C function."""
        classes, rows = logits.shape
        shapes = dict(logits=(classes, rows), prob_scale=(rows,), neg_target=(classes, rows))
        tensors = dict(logits=logits, prob_scale=prob_scale, neg_target=neg_target)
        if rows % LANES or min(classes, rows) < 1:
            raise ValueError(f"softmax residual: rows {rows} must be a positive multiple of {LANES}")
        _check_tensors("softmax residual", tensors, shapes)
        scratch = logits.new_empty(2 * rows)
        return functools.partial(_call_keeping, self._softmax_residual, (logits, prob_scale, neg_target, scratch),
                                 classes, rows, *(t.data_ptr() for t in (logits, prob_scale, neg_target, scratch)))


def _call_keeping(function, tensors: tuple, *arguments) -> None:
    """function(*arguments); `tensors` rides along so that the raw pointers in `arguments` stay valid."""
    function(*arguments)


def find_compiler() -> str | None:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        path = shutil.which(candidate) if candidate else None
        if path:
            return path
    return None


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _build(compiler: str, target: Path) -> None:
    """Compile SOURCE into `target` atomically (temporary file in the same folder, then rename)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp.so", dir=target.parent)
    except OSError as error:
        raise NativeUnavailable(f"cannot write the kernel cache {target.parent}: {error}; set RNS_ROS_CACHE_DIR "
                                f"to a writable folder") from error
    os.close(handle)
    try:
        try:
            done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", temporary, "-lm"], capture_output=True,
                                  text=True, timeout=_COMPILE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise NativeUnavailable(f"compiling {SOURCE.name} with {compiler} failed: {error}") from error
        if done.returncode != 0:
            raise NativeUnavailable(f"compiling {SOURCE.name} with {compiler} failed "
                                    f"(exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


_lock = threading.Lock()
_loaded: NativeKernel | None = None
_failure: NativeUnavailable | None = None


def load() -> NativeKernel:
    """The kernel, compiled on the first call of a process (or found in the cache); raises
    NativeUnavailable, and keeps raising it in this process, when it cannot be had."""
    global _loaded, _failure
    with _lock:
        if _loaded is not None:
            return _loaded
        if _failure is not None:
            raise _failure
        try:
            _loaded = _load_uncached()
        except NativeUnavailable as error:
            _failure = error
            raise
        return _loaded


def _load_uncached() -> NativeKernel:
    compiler = find_compiler()
    if compiler is None:
        raise NativeUnavailable("no C compiler found ($CC, cc, gcc, clang); install one "
                                "(Debian/Ubuntu: apt install gcc) for the fast CPU adapter kernel")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NativeUnavailable(f"the C compiler {compiler} does not run: {error}") from error
    try:
        source = SOURCE.read_text()
    except OSError as error:
        raise NativeUnavailable(f"the kernel source is missing: {error}; reinstall rns_ros") from error
    key = hashlib.sha256("\0".join([source, " ".join(FLAGS), compiler, version, platform.machine(),
                                    _cpu_identity()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"subspace_steps-{key}.so"
    if not target.exists():
        _build(compiler, target)
    try:
        return NativeKernel(ctypes.CDLL(str(target)), target)
    except OSError as error:
        raise NativeUnavailable(f"loading {target} failed: {error}") from error


def reset_for_tests() -> None:
    """Forget the loaded kernel and any failure (the next load() looks again)."""
    global _loaded, _failure
    with _lock:
        _loaded, _failure = None, None
