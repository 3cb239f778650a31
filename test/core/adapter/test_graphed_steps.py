"""The adapter's CUDA path (graphed_steps.py), run on the CPU through the same code with a fake
graph backend (a "capture" that returns the step function, counted): the steps agree with the
plain loop; zero-row padding changes nothing; buffers and graphs are kept per shape and reused,
the least recently used dropped; a failed capture is warned once, reported, and the steps run
eagerly with the same results. On a GPU (gpu-marked, scripts/gpu/check.sh): the capture succeeds,
replays agree with the plain loop, `cuda:1` works from device 0, and CUDA work in another thread
during a capture invalidates nothing."""
from __future__ import annotations

import threading
import warnings

import pytest
import torch

from rns_ros.core.adapter import fast, graphed_steps
from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.graphed_steps import GraphCache, padded_rows, solve_graphed
from rns_ros.core.adapter.synthetic import HARD_SCENARIOS, SyntheticScenario, build_scenario
from rns_ros.core.adapter.test_time import TestTimeAdapter, predict_from_problem
from rns_ros.core.matmul_precision import exact_fp32

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = dict(num_classes=6, dim=40, support_per_class=8, num_queries=150, classes_in_image=4)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class FakeGraphs:
    """A capture that keeps the step function (each replay runs it); counts captures."""

    name, captures = "fake graph", True

    def __init__(self):
        self.captured: list[torch.device] = []

    def capture(self, steps, device):
        self.captured.append(device)
        return steps


class FailingGraphs(FakeGraphs):
    def capture(self, steps, device):
        raise RuntimeError("operation not permitted when stream is capturing")


@pytest.fixture(autouse=True)
def fresh_record():
    graphed_steps.reset_execution_record()
    yield
    graphed_steps.reset_execution_record()


def problem_of(spec: SyntheticScenario, config: AdapterConfig = AdapterConfig()):
    queries, memory = build_scenario(spec)
    return TestTimeAdapter(config).build_problem(queries, memory)


def probabilities(queries, weights):
    weight, bias = weights
    return torch.softmax(queries @ weight.T + bias, dim=1)


@pytest.mark.parametrize("spec", HARD_SCENARIOS[:2] + HARD_SCENARIOS[5:6], ids=["hard0", "hard1", "hard5"])
def test_graphed_steps_agree_with_the_plain_loop(spec):
    """700 steps as 14 replays of a 50-step graph; and 130 steps (2 graphs + a remainder of 30)
    with Adam, whose bias correction shows any wrong step number at once."""
    for config in (AdapterConfig(seed=spec.seed), AdapterConfig(seed=spec.seed, steps=130, optimizer="adam",
                                                                lr=0.02, weight_decay=0.0)):
        queries, problem = problem_of(spec, config)
        plain = predict_from_problem(problem, queries, AdapterConfig(**{**config.__dict__, "solver": "plain"}))
        backend = FakeGraphs()
        got = probabilities(queries, solve_graphed([problem], config, cache=GraphCache(backend))[0])
        assert len(backend.captured) == (1 if config.steps == 700 else 2)
        assert float((got - plain).abs().max()) <= 1e-4 and bool((got.argmax(1) == plain.argmax(1)).all())
    assert graphed_steps.execution_record().graph_solves == 2


def test_zero_row_padding_changes_nothing():
    queries, problem = problem_of(SyntheticScenario(**SMALL, seed=3))
    config = AdapterConfig(steps=120)
    exact = solve_graphed([problem], config)[0]
    for rows in (problem.num_rows, padded_rows(problem.num_rows), problem.num_rows + 97):
        padded = solve_graphed([problem], config, rows=rows)[0]
        for a, b in zip(padded, exact):
            torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
    with pytest.raises(ValueError, match="rows"):
        solve_graphed([problem], config, rows=problem.num_rows - 1)


def test_padded_rows_buckets_waste_at_most_a_quarter():
    buckets = [padded_rows(rows) for rows in range(1, 5000)]
    for rows, bucket in zip(range(1, 5000), buckets):
        assert bucket >= rows and bucket % 32 == 0 and bucket - rows < max(32, rows / 4)
    assert buckets == sorted(buckets) and len(set(buckets)) < 60  # 5000 sizes share a few dozen shapes


def test_buffers_and_graphs_are_kept_per_shape_and_reused():
    backend = FakeGraphs()
    cache = GraphCache(backend, size=2)
    config = AdapterConfig(steps=60)  # one 50-step graph + a 10-step remainder per shape
    spec = SyntheticScenario(**{**SMALL, "support_per_class": 60}, seed=5)
    queries, memory = build_scenario(spec)
    adapter = TestTimeAdapter(config)
    _, big = adapter.build_problem(queries, memory)
    _, small = adapter.build_problem(queries[:130], memory)
    assert small.num_rows < big.num_rows and padded_rows(small.num_rows) == padded_rows(big.num_rows)
    solve_graphed([big], config, cache=cache)
    first = next(iter(cache.entries.values()))
    solve_graphed([small], config, cache=cache)  # same bucket: same buffers, no new capture
    assert list(cache.entries.values()) == [first] and len(backend.captured) == 2
    assert sorted(first.graphs) == [10, 50]
    solve_graphed([small, big], config, cache=cache)  # a batch is another shape
    _, fewer = TestTimeAdapter(config).build_problem(*build_scenario(SyntheticScenario(**{**SMALL, "num_classes": 4})))
    solve_graphed([fewer], config, cache=cache)  # other classes: another shape; the oldest is dropped
    assert len(cache.entries) == 2 and first not in cache.entries.values() and len(backend.captured) == 6
    keys = list(cache.entries)
    assert [k.batch for k in keys] == [2, 1] and keys[1].classes == 4
    record = graphed_steps.execution_record()
    assert (record.captured_graphs, record.graph_solves, record.eager_solves) == (6, 4, 0)


def test_a_failed_capture_is_warned_once_reported_and_runs_eagerly():
    queries, problem = problem_of(SyntheticScenario(**SMALL, seed=6))
    config = AdapterConfig(steps=80)
    reference = solve_graphed([problem], config, rows=padded_rows(problem.num_rows))[0]  # no cache: eager
    cache = GraphCache(FailingGraphs())
    with pytest.warns(RuntimeWarning, match="eagerly.*not permitted when stream is capturing"):
        got = solve_graphed([problem], config, cache=cache)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second failure (another shape) warns no more
        solve_graphed([problem, problem], config, cache=cache)
    for a, b in zip(got, reference):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    record = graphed_steps.execution_record()
    assert record.graph_solves == 0 and record.eager_solves == 3 and "not permitted" in record.capture_failure
    execution, warning = fast.describe_execution(AdapterConfig(), "cuda:0")
    assert "eager" in execution and "capture failed" in execution and "5x slower" in warning


def test_describe_execution_on_cuda_says_what_ran():
    assert fast.describe_execution(AdapterConfig(cuda_graphs=False), "cuda") == (
        "exact steps on CUDA, eager (cuda_graphs=False)", None)
    queries, problem = problem_of(SyntheticScenario(**SMALL, seed=7))
    solve_graphed([problem], AdapterConfig(steps=50), cache=GraphCache(FakeGraphs()))
    execution, warning = fast.describe_execution(AdapterConfig(), "cuda")
    assert warning is None and "replayed CUDA graphs of 50 steps (1 captured, 1 solves replayed, 0 eager)" in execution


def test_cpu_steps_build_their_step_numbers_only_when_they_use_them():
    """The compiled subspace steps take step numbers as ints: the 700 0-d step tensors are never
    built for them; the torch steps build them once."""
    from rns_ros.core.adapter import native

    try:
        kernel = native.load()
    except native.NativeUnavailable as error:
        pytest.skip(f"no compiled kernel here: {error}")
    spec = SyntheticScenario(num_classes=8, dim=256, support_per_class=30, num_queries=300, seed=8)
    config = AdapterConfig(fast_subspace=True, steps=30)
    _, problem = problem_of(spec, config)
    state = fast._FastState(problem, config)
    fast._run_subspace_native(state, fast._Subspace(state, problem), config.steps, 10, kernel)
    assert "step_numbers" not in state.__dict__
    state.exact_step(0)
    assert len(state.__dict__["step_numbers"]) == 30


def test_exact_fp32_switches_tf32_off_while_any_adapter_call_is_inside():
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    try:
        entered, leave = threading.Event(), threading.Event()

        def other_call():
            with exact_fp32("cuda"):
                entered.set()
                leave.wait(10)

        thread = threading.Thread(target=other_call)
        with exact_fp32(torch.device("cuda:0")):
            assert torch.backends.cuda.matmul.fp32_precision == "ieee"
            thread.start()
            assert entered.wait(10)
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"  # the other call is still inside
        leave.set()
        thread.join(10)
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        with exact_fp32("cpu"):  # nothing changes for CPU work
            assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


def on_device(problem, queries, device):
    moved = problem.__class__(**{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in problem.__dict__.items()})
    return moved, queries.to(device)


@pytest.mark.gpu
@needs_cuda
def test_cuda_graph_capture_succeeds_and_replays_agree_with_the_plain_loop():
    spec = SyntheticScenario(num_classes=20, dim=512, support_per_class=60, num_queries=800, seed=3)
    queries, problem = problem_of(spec)
    plain = predict_from_problem(problem, queries, AdapterConfig(solver="plain"))
    moved, on_gpu = on_device(problem, queries, "cuda")
    for _ in range(3):  # one capture, then replays of the same shape
        got = predict_from_problem(moved, on_gpu, AdapterConfig()).cpu()
        assert float((got - plain).abs().max()) <= 1e-4 and bool((got.argmax(1) == plain.argmax(1)).all())
    record = graphed_steps.execution_record()
    assert record.capture_failure is None and record.captured_graphs == 1 and record.graph_solves == 3, record
    assert "replayed CUDA graphs" in fast.describe_execution(AdapterConfig(), "cuda")[0]
    held = torch.cuda.memory_allocated()
    graphed_steps.release_buffers()  # what a closing engine does
    assert torch.cuda.memory_allocated() < held


@pytest.mark.gpu
@needs_cuda
def test_batched_frames_are_captured_on_cuda():
    queries, memory = build_scenario(SyntheticScenario(num_classes=12, dim=256, support_per_class=30,
                                                       num_queries=300, seed=9))
    frames = [queries[:200].cuda(), queries[100:].cuda()]
    adapter = TestTimeAdapter(AdapterConfig(steps=120))
    batched = adapter.predict_many(frames, memory)
    record = graphed_steps.execution_record()
    assert record.capture_failure is None and record.captured_graphs == 2 and record.graph_solves == 1, record
    for frame, got in zip(frames, batched):
        torch.testing.assert_close(got.cpu(), adapter.predict(frame.cpu(), memory), atol=1e-4, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_second_cuda_device_works_while_the_first_is_current():
    queries, problem = problem_of(SyntheticScenario(**SMALL, seed=10))
    plain = predict_from_problem(problem, queries, AdapterConfig(solver="plain"))
    moved, on_gpu = on_device(problem, queries, "cuda:1")
    with torch.cuda.device(0):
        got = predict_from_problem(moved, on_gpu, AdapterConfig())
    assert got.device == torch.device("cuda:1") and graphed_steps.execution_record().capture_failure is None
    assert float((got.cpu() - plain).abs().max()) <= 1e-4


@pytest.mark.gpu
@needs_cuda
def test_cuda_work_in_another_thread_does_not_invalidate_a_capture():
    """What a SAM 2 prompt does from a service thread while a frame's adapter captures: fresh
    allocations (cudaMalloc) and synchronisations. With thread-local capture both go through."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy():
        size = 1 << 20
        while not stop.is_set():
            try:
                block = torch.empty(size, device="cuda")  # new sizes: the allocator calls cudaMalloc
                block.fill_(1.0)
                torch.cuda.synchronize()
                size += 4096
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
                return

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        for classes in range(4, 12):  # each class count is a new shape: a capture each
            queries, problem = problem_of(SyntheticScenario(**{**SMALL, "num_classes": classes, "seed": classes}))
            moved, on_gpu = on_device(problem, queries, "cuda")
            predict_from_problem(moved, on_gpu, AdapterConfig(steps=60))
    finally:
        stop.set()
        thread.join(30)
    record = graphed_steps.execution_record()
    assert not errors and record.capture_failure is None and record.graph_solves == 8, (errors, record)
