"""The `rns` lifecycle node: camera images in, label images, class map, confidence, overlay out.

    rns_node --ros-args -r image:=/camera/image_raw --params-file config/rns.yaml

Lifecycle: configure locks `memory_dir` (one writer per memory), builds the engine (models on the
device), restores the memory and adds the initial `classes`; activate subscribes to `image` and
starts the worker thread; deactivate stops both; cleanup frees the models and the memory_dir. With
`autostart` (default) the node configures and activates itself on start. Every callback is guarded
(guard.py): an error inside one is logged and counted, never the end of the process.

Frame flow: the subscription callback only drops the message into its camera's one-slot mailbox
(newest wins: an untaken frame is replaced and counted as stale); one worker thread takes the
waiting frames (least recently served camera first; several cameras' at once: camera_batching), decodes
them, runs the engine and publishes each camera's outputs with that frame's header. Bad frames are
dropped with a logged, counted reason. Topics (private names, so `/rns/labels` for the default
node name; with `cameras: [front, ...]` the per-frame ones are ~/front/labels ...):
  ~/labels      sensor_msgs/Image mono8 (mono16 once a class id exceeds 255), 0 = unlabeled,
                header copied from the input, input resolution
  ~/confidence  sensor_msgs/Image 32FC1 (or mono8), probability of the winning class
  ~/overlay     sensor_msgs/Image rgb8, input blended with class colours, with a legend (only
                while subscribed)
  ~/labels_color sensor_msgs/Image rgb8, each pixel its class colour (only while subscribed)
  ~/class_map   rns_ros/ClassMap, reliable + transient_local, republished on every change
  ~/label_info  vision_msgs/LabelInfo, the same classes for vision_msgs consumers (Nav2), latched
  ~/points      sensor_msgs/PointCloud2 x, y, z, rgb, label, confidence (with depth.enabled: from
                `depth/image` + `depth/camera_info`, paired by stamp; only while subscribed)
  /diagnostics  diagnostic_msgs/DiagnosticArray

Around it: parameters in params.py, the cameras and their inputs in cameras.py (QoS: inputs.py),
publishers in outputs.py, the depth input and ~/points in depth_input.py, batches in batching.py,
the teaching services in services.py (handlers: teaching.py), /diagnostics in diagnostics.py.
Why this file is over 300 lines: the lifecycle transitions and the frame loop share the node's
state (engine, mailboxes, worker, cameras, teacher); keeping them together keeps every state
change in one place.
"""
from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from typing import Any

# An entry point (rns_node, also without the launch file): OpenMP threads sleep instead of spinning
# while they wait, unless the caller chose otherwise; read when torch loads, a few imports below
# (docs/backbones.md: spinning threads made CPU forwards several times slower on a busy machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import rclpy  # noqa: E402 - after the OpenMP setting
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from rns_ros.core.advice import explain
from rns_ros.core.memory.dir_lock import MemoryDirBusy, MemoryDirLock
from rns_ros.ros import diagnostics, params
from rns_ros.ros.batching import batch_size, segment_frames
from rns_ros.ros.camera_mailboxes import CameraMailboxes
from rns_ros.ros.cameras import (SINGLE_CAMERA_TOPIC, Camera, click_frames, decode_frame, make_cameras,
                                 teaching_image)
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth_input import DepthOutput
from rns_ros.ros.engine import Engine, EngineFactory, build_engine
from rns_ros.ros.guard import CallbackGuard
from rns_ros.ros.inputs import image_qos
from rns_ros.ros.memory_store import default_memory_dir
from rns_ros.ros.outputs import ClassMapOutput, FrameOutputs
from rns_ros.ros.prompting import prompt_masker_factory
from rns_ros.ros.services import create_teaching_interfaces, destroy_teaching_interfaces
from rns_ros.ros.spinning import stop_executor
from rns_ros.ros.stats import PipelineStats
from rns_ros.ros.teaching import Teacher

NODE_NAME = "rns"
INPUT_TOPIC = SINGLE_CAMERA_TOPIC  # remap it to the camera: -r image:=/camera/image_raw


class RnsNode(LifecycleNode):
    """The segmentation node. `engine_factory` builds the engine on configure (tests pass fakes)."""

    def __init__(self, node_name: str = NODE_NAME, *, engine_factory: EngineFactory = build_engine, **kwargs):
        super().__init__(node_name, **kwargs)
        self._engine_factory = engine_factory
        try:
            self._declare_parameters()
        except Exception:
            self.destroy_node()
            raise
        self.node_config, self.engine_config = params.build_configs(self._parameter_values())
        self.guard = CallbackGuard(self.get_logger().error)  # errors inside callbacks: logged, counted
        self.add_on_set_parameters_callback(self.guard.wrap("parameters", self._on_set_parameters,
                                                            _parameters_refused))

        self.engine: Engine | None = None
        self.stats = PipelineStats()  # every camera's frames (the totals)
        self.cameras: list[Camera] = []  # built on configure (cameras.py), each with its outputs
        self._mailboxes: CameraMailboxes | None = None  # one newest-wins slot per camera
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.class_map_output: ClassMapOutput | None = None
        self._diag_pub = None
        self._diag_timer = None
        self._configured = False
        self._active = False
        self._last_warning = 0.0
        self.autostart_error: str | None = None
        self.teacher: Teacher | None = None  # teaching services (docs/teaching.md), set on configure
        self._latest_image = None  # newest frame of any camera, for teaching from "now"
        self._teaching_handles: list = []
        self._memory_lock: MemoryDirLock | None = None  # held from configure to cleanup
        if self.node_config.autostart:
            self._autostart()
        else:
            self.get_logger().info(f"unconfigured, waiting for a lifecycle manager (autostart is false): "
                                   f"ros2 lifecycle set {self.get_fully_qualified_name()} configure")

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> None:
        for spec in params.PARAMETERS:
            self.declare_parameter(spec.name, params.default_value(spec), params.descriptor(spec))
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        unknown = params.unknown_parameters(overrides)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for node {self.get_name()!r}; "
                             f"known: {sorted(params.SPECS)}")

    def _parameter_values(self, changed: dict[str, Any] | None = None) -> dict[str, Any]:
        values = {spec.name: self.get_parameter(spec.name).value for spec in params.PARAMETERS}
        values.update(changed or {})
        return values

    def _on_set_parameters(self, new_params) -> SetParametersResult:
        changed = {p.name: p.value for p in new_params if params.SPECS.get(p.name)}
        for name, value in changed.items():
            unchanged = value == self.get_parameter(name).value  # `ros2 param load` of a dump sets them all
            if self._configured and not params.SPECS[name].runtime and not unchanged:
                return SetParametersResult(
                    successful=False,
                    reason=f"{name!r} is read on configure; deactivate and clean up the node, set it, "
                           "then configure again")
        try:
            node_config, engine_config = params.build_configs(self._parameter_values(changed))
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        adapter_changed = engine_config.adapter != self.engine_config.adapter
        self.node_config, self.engine_config = node_config, engine_config
        if self.class_map_output is not None:  # new colours: the next frame republishes the class map
            self.class_map_output.set_palette(node_config.colors())
        for camera in self.cameras:
            if camera.depth is not None:
                camera.depth.input.config = node_config.depth
        if adapter_changed and self.engine is not None and hasattr(self.engine, "set_adapter_config"):
            self.engine.set_adapter_config(engine_config.adapter)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.autostart_error = self._last_transition_error or "configure failed"
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.autostart_error = self._last_transition_error or "activate failed"

    _last_transition_error: str | None = None

    def _fail(self, what: str, exc: BaseException) -> TransitionCallbackReturn:
        self._last_transition_error = f"{what}: {explain(exc, params.ERROR_SPELLING)}"
        self.get_logger().error(self._last_transition_error)
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.engine_config
        self.get_logger().info(f"configuring: backbone {cfg.backbone!r} on {cfg.device!r}, mode {cfg.mode!r}")
        from rns_ros.core.backbones import BACKBONE_PRESETS

        if getattr(BACKBONE_PRESETS.get(cfg.backbone), "test_only", False):
            self.get_logger().warning(f"backbone {cfg.backbone!r} has RANDOM weights: for tests and smoke "
                                      "runs only, its labels are meaningless")
        memory_dir = self.node_config.memory_dir or default_memory_dir(self.get_fully_qualified_name())
        self._memory_lock = MemoryDirLock(memory_dir, owner=f"node {self.get_fully_qualified_name()}",
                                          fix="give each node its own directory: -p memory_dir:=<another directory>")
        try:  # before loading anything: no other process may write this memory directory
            self._memory_lock.acquire()
        except (OSError, MemoryDirBusy) as exc:
            return self._fail("could not use the memory directory", exc)
        try:
            engine = self._engine_factory(cfg)
        except Exception as exc:  # weights missing, device policy, bad checkpoint ...
            self._memory_lock.release()
            return self._fail("could not build the engine", exc)
        if engine.device_warning:
            self.get_logger().error(engine.device_warning)
        if engine.adapter_warning:
            self.get_logger().warning(engine.adapter_warning)
        teacher = self._make_teacher(engine, memory_dir)
        try:
            teacher.restore()  # the saved memory first; then the initial classes it lacks
            for problem in teacher.store.load_problems:
                self.get_logger().error(f"support memory: {problem}")
            with engine.lock:
                known = {e.name for e in engine.classes()}
                missing = [n for n in self.node_config.classes if n not in known]
                if missing:
                    engine.add_classes(missing)
                    teacher.save()
        except Exception as exc:
            self._memory_lock.release()
            engine.close()
            return self._fail("could not add the initial classes", exc)
        self.engine = engine
        self.teacher = teacher
        self.cameras = make_cameras(self.node_config.cameras, self.stats)
        self._mailboxes = CameraMailboxes(range(len(self.cameras)))
        clicks = click_frames(self.cameras, lambda: self.node_config.max_image_pixels)
        self._teaching_handles = create_teaching_interfaces(self, teacher, lambda: self.node_config.teach_class,
                                                            self.guard, clicks)
        for camera in self.cameras:
            camera.outputs = FrameOutputs(self, camera.prefix)
            if self.node_config.depth.enabled:
                camera.depth = DepthOutput(self, self.node_config.depth, guard=self.guard, **camera.depth_topics())
        self.class_map_output = ClassMapOutput(self, self.node_config.colors())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.node_config.diagnostics_period_s,
                                             self.guard.wrap("diagnostics", self.publish_diagnostics))
        self._configured = True
        names = ", ".join(e.name for e in engine.classes()) or "none"
        self.get_logger().info(f"configured on {engine.device}; classes: {names}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            qos = image_qos(self.node_config.image_qos, self.node_config.image_qos_depth)
        except ValueError as exc:
            return self._fail("could not activate", exc)
        self._mailboxes.clear()
        self._mailboxes.reopen()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="rns-worker", daemon=True)
        self._worker.start()
        for camera in self.cameras:
            camera.subscribe(self, self.node_config.image_transport, qos, self.guard.wrap("image", self._on_image))
            if camera.depth is not None:
                camera.depth.subscribe(qos)
        result = super().on_activate(state)
        self._active = True
        self.publish_class_map(force=True)
        self.get_logger().info(f"active: segmenting {', '.join(c.topic_name for c in self.cameras)}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_pipeline()
        self.get_logger().info("inactive: stopped segmenting (models stay loaded)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: models and memory_dir released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_pipeline()
        self._release()
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_pipeline()
        self._release()
        self.get_logger().error("a transition failed: stopped and released everything (unconfigured)")
        return TransitionCallbackReturn.SUCCESS

    def _stop_pipeline(self) -> None:
        """Unsubscribe, stop the worker (after its current frame), forget the pending frame."""
        self._active = False
        for camera in self.cameras:
            camera.unsubscribe(self)
            if camera.depth is not None:
                camera.depth.unsubscribe()
        self._stop.set()
        if self._mailboxes is not None:
            self._mailboxes.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._mailboxes is not None:
            self._mailboxes.clear()

    def _make_teacher(self, engine, memory_dir) -> Teacher:
        logger = self.get_logger()
        return Teacher(engine, memory_dir=memory_dir,
                       latest_frame=lambda: teaching_image(self._latest_image, self.node_config.max_image_pixels),
                       masker=prompt_masker_factory(engine, self.engine_config.proposals),
                       on_change=self.publish_class_map, stamp=lambda: self.get_clock().now().to_msg(),
                       palette=lambda: self.node_config.colors(),
                       log_error=logger.error, log_info=logger.info,
                       max_image_pixels=self.node_config.max_image_pixels)

    @property
    def outputs(self) -> FrameOutputs | None:
        """The first (with one camera: the only) camera's outputs."""
        return self.cameras[0].outputs if self.cameras else None

    @property
    def depth_output(self) -> DepthOutput | None:
        """The first (with one camera: the only) camera's depth output (depth.enabled)."""
        return self.cameras[0].depth if self.cameras else None

    def _release(self) -> None:
        """Destroy publishers and timer, free the engine."""
        destroy_teaching_interfaces(self, self._teaching_handles)
        self._teaching_handles = []
        self.teacher = None
        if self._memory_lock is not None:
            self._memory_lock.release()  # another node may use this memory_dir now
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        for output in [o for c in self.cameras for o in (c.outputs, c.depth)] + [self.class_map_output]:
            if output is not None:
                output.destroy()
        for camera in self.cameras:
            camera.outputs = camera.depth = None
        self.class_map_output = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self._configured = False

    def close(self) -> None:
        """Stop everything this node started (call before destroy_node)."""
        self._stop_pipeline()
        self._release()

    # ------------------------------------------------------------------ frames
    def _on_image(self, camera: Camera, msg) -> None:
        start = time.monotonic()
        camera.latest = self._latest_image = msg
        if self.teacher is not None and not self.teacher.processing_enabled:
            return  # paused by ~/enable: keep the frame for teaching, segment nothing
        replaced = self._mailboxes.put(self.cameras.index(camera), (msg, start))
        camera.stats.frame_arrived(replaced)
        camera.stats.callback_took(time.monotonic() - start)

    def _work(self) -> None:
        while not self._stop.is_set():
            taken = self._mailboxes.take(batch_size(len(self.cameras), self.node_config.camera_batching,
                                                    self.engine), timeout=0.2)
            if not taken or self._stop.is_set():
                continue
            try:
                self.process_frames([(self.cameras[i], msg, arrived) for i, (msg, arrived) in taken])
            except Exception as exc:  # never let the worker die
                for i, _ in taken:
                    self.cameras[i].stats.frame_failed(f"internal error: {exc!r}")
                self._warn(f"frame failed: internal error: {exc!r}")

    def process_frames(self, frames: list) -> None:
        """Decode, segment and publish frames [(camera, msg, arrival time)], one per camera
        (worker thread). Each camera's outputs get its own frame's header and labels."""
        started = time.monotonic()
        decoded = []
        for camera, msg, arrived in frames:
            # the depth partner is looked up before it can leave the ring
            early_partner = camera.depth.partner(msg.header) if camera.depth is not None else None
            try:
                rgb = decode_frame(msg, self.node_config.max_image_pixels)
            except FrameError as exc:
                self._drop_invalid(f"bad frame: {exc}", camera)
                continue
            decoded.append((camera, msg, rgb, arrived, early_partner))
        engine = self.engine
        if engine is None or not decoded:
            return
        segmented = segment_frames(engine, decoded, self._engine_failed)
        class_map = self.class_map_output
        if class_map is None or not segmented:
            return
        self.publish_class_map()  # a no-op unless the classes changed
        for (camera, msg, rgb, arrived, early_partner), result in segmented:
            if camera.outputs is None:
                return
            try:
                labels = camera.publish(rgb, result, msg.header, class_map, self.node_config)
            except ValueError as exc:  # ids beyond mono16
                camera.stats.frame_failed(f"labels not encodable: {exc}")
                self._warn(f"frame dropped: {exc}")
                continue
            if camera.depth is not None:  # after the labels: depth never holds them back
                camera.depth.publish(msg.header, rgb, labels, result.confidence, early_partner)
            camera.stats.frame_processed(arrived, started)

    def _engine_failed(self, frame: tuple, reason: str) -> None:
        frame[0].stats.frame_failed(reason)
        self._warn(f"frame dropped: {reason}")

    def _drop_invalid(self, reason: str, camera: Camera) -> None:
        camera.stats.frame_invalid(reason)
        self._warn(f"frame dropped: {reason}" + (f" (camera {camera.name})" if camera.name else ""))

    def _warn(self, text: str) -> None:
        """Log a warning at most once per second (a broken camera must not flood the log)."""
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ class map + diagnostics
    def publish_class_map(self, force: bool = False) -> None:
        """Publish ~/class_map if the support memory changed since the last one (or `force`)."""
        engine, output = self.engine, self.class_map_output
        if engine is not None and output is not None:
            output.publish(engine, force, self.node_config.min_confidence)

    def _state(self) -> str:
        return "active" if self._active else ("inactive" if self._configured else "unconfigured")

    def diagnostic_status(self) -> DiagnosticStatus:
        topic = ", ".join(c.topic_name for c in self.cameras) or INPUT_TOPIC
        single = len(self.cameras) == 1 and not self.cameras[0].name
        depth = self.depth_output.input if single and self.depth_output is not None else None
        return diagnostics.node_status(f"{self.get_fully_qualified_name()}: segmentation", self._state(),
                                       self.stats.snapshot(), self.engine, self.teacher, topic, depth,
                                       callback_errors=(self.guard.errors, self.guard.last_error))

    def camera_statuses(self) -> list[DiagnosticStatus]:
        """One status per named camera (none for the single camera: the node's status is its own)."""
        device = self.engine.device if self.engine is not None else ""
        return [diagnostics.camera_status(self.get_fully_qualified_name(), c.name, self._state(),
                                          c.stats.snapshot(), c.topic_name, device,
                                          c.depth.input if c.depth is not None else None)
                for c in self.cameras if c.name]

    def publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        msg = DiagnosticArray(status=[self.diagnostic_status()] + self.camera_statuses())
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def _parameters_refused(new_params, exc: BaseException) -> SetParametersResult:
    return SetParametersResult(successful=False, reason=f"internal error: {exc!r}")


def _wants_help(args: list[str]) -> bool:
    """-h / --help before any --ros-args (after it, the words belong to ROS)."""
    ours = args[1:args.index("--ros-args")] if "--ros-args" in args else args[1:]
    return "-h" in ours or "--help" in ours


def usage() -> str:
    """What `rns_node --help` prints: how to start it, then every parameter with its default."""
    lines = [__doc__.split("\n\n")[0], "", "  " + __doc__.split("\n\n")[1].strip(), "",
             "Parameters (-p name:=value or --params-file; docs/ros.md has the full table):"]
    for spec in params.PARAMETERS:
        lines.append(f"  {spec.name} (default {params.default_value(spec)!r})")
        lines.append(textwrap.fill(spec.description, 100, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def main(args: list[str] | None = None, engine_factory: EngineFactory = build_engine) -> int:
    """Console script `rns_node`: run the node until SIGINT / SIGTERM (exit 0). Exit 2 for bad
    parameters, 1 if autostart fails.

    rclpy's own signal handler would shut the context down at once, while the worker may still be
    publishing a frame ("publisher's context is invalid"); here a signal only ends the spin loop, and
    the node stops its worker before the context goes.
    """
    args = args if args is not None else sys.argv
    if _wants_help(args):
        print(usage())
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        node = RnsNode(engine_factory=engine_factory)
    except ValueError as exc:  # bad parameters: refuse to start, say why
        print(f"rns_node: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    code = 0
    try:
        if node.autostart_error:
            node.get_logger().fatal(f"autostart failed, exiting: {node.autostart_error}")
            code = 1
        else:
            executor.add_node(node)
            while not stop.is_set() and rclpy.ok():
                try:
                    executor.spin_once(timeout_sec=0.1)  # returns often, so a signal is seen at once
                except ExternalShutdownException:
                    break
                except Exception as exc:  # noqa: BLE001 - an error a callback let out: never the end
                    node.guard.record("executor", exc)
    finally:
        stop_executor(executor)
        node.close()  # the worker ends (after its current frame) while the context is still valid
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
