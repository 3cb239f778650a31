"""The fast solver's exact steps in fixed buffers, replayed as CUDA graphs (issue 27): the CUDA
path of `fast.solve_fast` and of `options.solve_fast_batched`, and the CPU path of the latter.

    weights = solve_graphed([problem], config)   # [(W (C, d), b (C,))], as fast.solve_fast

A step on CUDA is a handful of small kernels, so launching them one by one from Python costs
more than their arithmetic. Here:
- **Once per problem shape.** The rows of each problem are padded with zero rows up to a bucket
  (`padded_rows`: less than a quarter more rows, so frames of similar size share a shape), and each shape
  (device, batch, classes, padded rows, width, optimiser settings) gets fixed buffers and graphs
  captured once (`GraphCache`, the 8 shapes used last). Every later frame of that shape copies its
  problem into the buffers and replays; nothing is allocated, nothing is read back, no capture runs.
- **K steps per graph.** A graph holds `STEPS_PER_GRAPH` (50) steps: 700 steps are 14 replays; a
  remainder (140 = 2 x 50 + 40) gets a graph of its own, captured once too.
- **Four kernels per step, no bookkeeping.** The residual's two terms moved out of the loop:
      grad = R X = (softmax(P X^T) diag(a s_y) - a y) X = softmax(P X^T) Xs + G0,
  with Xs = diag(a s_y) X and G0 = -(a y)^T X computed once per frame, so a step is one matmul for
  the logits, the softmax over classes, one matmul that adds G0 (baddbmm), and torch's fused AdamW
  kernel (`torch._fused_adamw_`, what torch.optim's fused=True runs). The step number is read from
  a buffer of K numbers that the graph advances once at its end, not per step.
  Same objective, optimiser, start and step count as `fast._FastState.exact_step` (and the plain
  loop): only the rounding differs (tested against the plain loop on the CPU through the same code).
- **Padding is exact.** A zero row has zero inputs and zero factors: its gradient term is exactly 0.

Which path ran is recorded (`execution_record`): `fast.describe_execution` and the benchmarks
report it. A capture that fails (a driver or library that cannot capture) is reported once as a
warning and that shape runs the same steps eagerly (about 5x slower).

Devices and threads: everything runs inside `torch.cuda.device(the problems' device)` on that
device's current stream, so `cuda:1` works whatever the current device; the side stream of warm-up
and capture is created on that device. Capture uses `capture_error_mode="thread_local"`: a CUDA
call from another thread (a SAM 2 prompt of the node's teaching service, say) can neither fail nor
invalidate a capture in progress, so callers need no lock against other CUDA work. Two solves of
one shape serialise on the shape's lock (they share its buffers).

Memory: per shape, 4 (B, M', W) and 5 (B, C, W) float32 buffers plus the graphs' small pools (at
20 classes, 1024 padded rows and width 520: about 6 MB); `release_buffers` drops them all.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.plain import initial_parameters
from rns_ros.core.adapter.problem import TrainingProblem
from rns_ros.core.matmul_precision import exact_fp32

COLUMN_ALIGN = 8  # the augmented feature dimension [d features | 1 | zeros] is a multiple of this
STEPS_PER_GRAPH = 50  # steps captured in one graph (a replay runs them all)
CACHE_SIZE = 8  # problem shapes whose buffers and graphs are kept (least recently used dropped)
_ROW_QUANTUM = 32  # padded row counts are multiples of at least this


def augmented_width(dim: int) -> int:
    """Columns of [features | 1 | 0 ...]: d + 1 rounded up to a multiple of COLUMN_ALIGN."""
    return -(-(dim + 1) // COLUMN_ALIGN) * COLUMN_ALIGN


def padded_rows(rows: int) -> int:
    """The bucket of `rows` training rows: the next multiple of max(32, 2^(floor(log2 rows) - 2)),
    so padding adds less than a quarter of the rows (at most 31 to small problems), and one shape
    serves every frame within its bucket."""
    quantum = max(_ROW_QUANTUM, 1 << max(0, rows.bit_length() - 3))
    return -(-max(rows, 1) // quantum) * quantum


@dataclass(frozen=True)
class ShapeKey:
    """What fixes a problem's buffers and graphs."""

    device: str
    batch: int
    classes: int
    rows: int  # padded
    width: int
    optimizer: tuple  # (name, lr, beta1, beta2, weight_decay, eps): baked into the graph's kernels


@dataclass
class ExecutionRecord:
    """What ran the graphed steps in this process (read by fast.describe_execution, the benches)."""

    captured_graphs: int = 0
    graph_solves: int = 0  # solves replayed from captured graphs
    eager_solves: int = 0  # solves run step by step (cuda_graphs=False, the CPU, or a failed capture)
    capture_failure: str | None = None  # the last capture failure, if any

    def path(self) -> str:
        """One line: the path taken so far."""
        if self.capture_failure is not None:
            return (f"eager: CUDA graph capture failed ({self.capture_failure}); {self.graph_solves} solves "
                    f"replayed, {self.eager_solves} eager")
        return (f"replayed CUDA graphs of {STEPS_PER_GRAPH} steps ({self.captured_graphs} captured, "
                f"{self.graph_solves} solves replayed, {self.eager_solves} eager)")


_record = ExecutionRecord()
_record_lock = threading.Lock()
_warned_capture = False


def execution_record() -> ExecutionRecord:
    """A copy of this process's record."""
    with _record_lock:
        return ExecutionRecord(**_record.__dict__)


def reset_execution_record() -> None:
    """Forget what ran (tests, and benchmarks that report one run)."""
    global _record, _warned_capture
    with _record_lock:
        _record, _warned_capture = ExecutionRecord(), False


def _count(**increments: int) -> None:
    with _record_lock:
        for name, value in increments.items():
            setattr(_record, name, getattr(_record, name) + value)


def _record_failure(reason: str) -> bool:
    """Record a failed capture; True the first time in this process (the one to warn about)."""
    global _warned_capture
    with _record_lock:
        _record.capture_failure = reason
        first, _warned_capture = not _warned_capture, True
    return first


class CudaGraphs:
    """Captures a step function as a CUDA graph on `device`; returns its replay."""

    name = "CUDA graph"
    captures = True

    def capture(self, steps: Callable[[], None], device: torch.device) -> Callable[[], None]:
        side = torch.cuda.Stream(device=device)
        current = torch.cuda.current_stream(device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            steps()  # warm-up outside capture: cuBLAS handle and workspace, the allocator's blocks
            side.synchronize()  # once per shape
            graph = torch.cuda.CUDAGraph()
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                steps()
            except BaseException:
                with contextlib.suppress(RuntimeError):
                    graph.capture_end()
                raise
            graph.capture_end()
        current.wait_stream(side)
        return graph.replay


class EagerSteps:
    """The "capture" of a step function is the function itself: every replay runs it eagerly.
    The CPU's batched path, `cuda_graphs=False`, and the tests of this module on the CPU."""

    name = "eager"
    captures = False

    def capture(self, steps: Callable[[], None], device: torch.device) -> Callable[[], None]:
        return steps


class StepBuffers:
    """The fixed buffers of one shape, the graphs that step them, and their lock."""

    def __init__(self, key: ShapeKey, config: AdapterConfig):
        batch, classes, rows, width = key.batch, key.classes, key.rows, key.width
        device = torch.device(key.device)
        self.key = key
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float32, device=device)  # noqa: E731
        self.inputs = zeros(batch, rows, width)  # X = [features | 1 | 0], zero rows as padding
        self.inputs_t = zeros(batch, width, rows)  # X^T, contiguous (a transposed view is slower on a CPU)
        self.scaled = zeros(batch, rows, width)  # Xs = diag(a s_y) X
        self.constant_grad = zeros(batch, classes, width)  # G0 = -(a y)^T X
        self.params = zeros(batch, classes, width)  # P = [W | b | 0]
        self.exp_avg, self.exp_avg_sq, self.grad = zeros(batch, classes, width), zeros(batch, classes, width), \
            zeros(batch, classes, width)
        self.logits = zeros(batch, classes, rows)  # class-major
        self.first_numbers = torch.arange(1, STEPS_PER_GRAPH + 1, dtype=torch.float32, device=device)
        self.numbers = self.first_numbers.clone()  # the step numbers of the next graph's steps
        self.number_views = self.numbers.unbind()  # 0-d views: what the fused kernel reads
        self.kernel = torch._fused_adamw_ if config.optimizer == "adamw" else torch._fused_adam_
        self.hyper = dict(lr=config.lr, beta1=config.betas[0], beta2=config.betas[1],
                          weight_decay=config.weight_decay, eps=config.eps, amsgrad=False, maximize=False)
        self.graphs: dict[int, Callable[[], None]] = {}  # steps in the graph -> its replay
        self.capture_failure: str | None = None  # set once a capture failed: this shape runs eagerly
        self.lock = threading.Lock()
        self._starts: dict[tuple, torch.Tensor] = {}

    def load(self, problems: Sequence[TrainingProblem], config: AdapterConfig) -> None:
        """Copy the problems into the buffers and reset the parameters, moments and step numbers."""
        for i, problem in enumerate(problems):
            rows, dim = problem.features.shape
            inputs = self.inputs[i]
            inputs.zero_()
            inputs[:rows, :dim] = problem.features
            inputs[:rows, dim] = 1.0
            factor = problem.loss_weights / rows  # a_i: betas, weights and the mean
            scale = inputs.new_zeros(inputs.shape[0], 1)
            scale[:rows, 0] = factor * problem.targets.sum(dim=1)
            torch.mul(inputs, scale, out=self.scaled[i])
            torch.mm((-factor[:, None] * problem.targets).T, inputs[:rows], out=self.constant_grad[i])
            self.params[i].copy_(self._start(problem.num_classes, dim, config))
        self.inputs_t.copy_(self.inputs.transpose(1, 2))
        self.exp_avg.zero_()
        self.exp_avg_sq.zero_()
        self.numbers.copy_(self.first_numbers)

    def _start(self, classes: int, dim: int, config: AdapterConfig) -> torch.Tensor:
        """The classifier's start [W | b | 0] (initial_parameters), made once per seed and init."""
        key = (config.init, config.seed, dim)
        if key not in self._starts:
            weight, bias = initial_parameters(classes, dim, config, device=self.params.device)
            start = torch.zeros_like(self.params[0])
            start[:, :dim], start[:, dim] = weight, bias
            self._starts[key] = start
        return self._starts[key]

    def steps(self, count: int) -> None:
        """`count` exact steps (count <= STEPS_PER_GRAPH), then the step numbers advance by count."""
        params, grad, logits, inputs_t = self.params, self.grad, self.logits, self.inputs_t
        constant_grad, scaled, kernel, hyper = self.constant_grad, self.scaled, self.kernel, self.hyper
        moments = ([params], [grad], [self.exp_avg], [self.exp_avg_sq], [])
        for number in self.number_views[:count]:
            torch.bmm(params, inputs_t, out=logits)
            torch.baddbmm(constant_grad, torch.softmax(logits, dim=1), scaled, out=grad)
            kernel(*moments, [number], **hyper)
        self.numbers.add_(count)

    def prepare(self, counts: set[int], backend) -> None:
        """Capture a graph for every step count in `counts` not captured yet (state is reloaded
        afterwards: the warm-up steps change it). A failure: recorded, warned once, eager from now."""
        for count in sorted(counts - set(self.graphs)):
            if self.capture_failure is not None:
                return
            try:
                self.graphs[count] = backend.capture(lambda count=count: self.steps(count), self.params.device)
            except Exception as error:  # noqa: BLE001 - any failure to capture means: run eagerly
                self.capture_failure = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                if _record_failure(self.capture_failure):
                    warnings.warn(f"fast adapter: capturing its steps as a {backend.name} failed, so they run "
                                  f"eagerly (about 5x slower): {self.capture_failure}", RuntimeWarning, stacklevel=4)
                return
            _count(captured_graphs=1)

    def run(self, steps: int) -> str:
        """Replay (or, after a failed capture, run) `steps` steps from the loaded state; the path."""
        full, rest = divmod(steps, STEPS_PER_GRAPH)
        counts = [STEPS_PER_GRAPH] * full + ([rest] if rest else [])
        if self.capture_failure is None and all(count in self.graphs for count in counts):
            for count in counts:
                self.graphs[count]()
            return "graph"
        for count in counts:
            self.steps(count)
        return "eager"

    def results(self, problems: Sequence[TrainingProblem]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for i, problem in enumerate(problems):
            dim = problem.features.shape[1]
            out.append((self.params[i, :, :dim].clone(), self.params[i, :, dim].clone()))
        return out


@dataclass
class GraphCache:
    """The buffers and graphs of the `size` shapes used last, captured with `backend`."""

    backend: object = field(default_factory=CudaGraphs)
    size: int = CACHE_SIZE
    entries: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def buffers(self, key: ShapeKey, config: AdapterConfig) -> StepBuffers:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
            entry = StepBuffers(key, config)
            self.entries[key] = entry
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
            return entry


_cuda_caches = {"graph": GraphCache(CudaGraphs()), "eager": GraphCache(EagerSteps())}


def release_buffers() -> None:
    """Drop this process's buffers and graphs (an engine that closes hands its GPU memory back;
    the next solve captures again)."""
    for cache in _cuda_caches.values():
        with cache.lock:
            cache.entries.clear()


def shape_key(problems: Sequence[TrainingProblem], config: AdapterConfig, rows: int | None = None) -> ShapeKey:
    """The shape of a batch of problems (same classes and dim, "train" mode), with `rows` padded
    rows (None: the largest problem's own count)."""
    first = problems[0]
    classes, dim = first.num_classes, first.features.shape[1]
    if any(p.num_classes != classes or p.features.shape[1] != dim or p.mode != "train" for p in problems):
        raise ValueError("batched problems must all be in 'train' mode with the same classes and dim")
    device = first.features.device
    most = max(p.num_rows for p in problems)
    rows = most if rows is None else rows
    if rows < most:
        raise ValueError(f"rows {rows} < the largest problem's {most}")
    return ShapeKey(str(device), len(problems), classes, rows, augmented_width(dim),
                    (config.optimizer, config.lr, *config.betas, config.weight_decay, config.eps))


def solve_graphed(problems: Sequence[TrainingProblem], config: AdapterConfig, *,
                  cache: GraphCache | None = None, rows: int | None = None
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Train the classifiers of `problems` (same classes and dim, "train" mode, one device) together,
    each as `fast.solve_fast`'s exact steps would. Returns one (W (C, d), b (C,)) per problem.

    cache: where buffers and graphs are kept for reuse; default on CUDA: this process's cache of
    captured graphs (config.cuda_graphs) or of eager buffers; on a CPU none (fresh buffers, eager).
    rows: the padded row count (default: `padded_rows` of the largest problem where a cache keeps
    the buffers, so that similar frames share them; the largest problem's own count otherwise)."""
    if not problems:
        return []
    device = problems[0].features.device
    on_cuda = device.type == "cuda"
    if cache is None and on_cuda:
        cache = _cuda_caches["graph" if config.cuda_graphs else "eager"]
    if rows is None and cache is not None:
        rows = padded_rows(max(p.num_rows for p in problems))
    key = shape_key(problems, config, rows)
    with (torch.cuda.device(device) if on_cuda else contextlib.nullcontext()), exact_fp32(device):
        if cache is None:
            buffers, backend = StepBuffers(key, config), EagerSteps()
        else:
            buffers, backend = cache.buffers(key, config), cache.backend
        with buffers.lock:
            full, rest = divmod(config.steps, STEPS_PER_GRAPH)
            if backend.captures:
                buffers.prepare(({STEPS_PER_GRAPH} if full else set()) | ({rest} if rest else set()), backend)
            buffers.load(problems, config)
            path = buffers.run(config.steps)
            _count(**({"graph_solves": 1} if path == "graph" else {"eager_solves": 1}))
            return buffers.results(problems)
