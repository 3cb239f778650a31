"""The `rns` lifecycle node: it wires the parts, each of which states its own contract.

    rns_node --ros-args -r image:=/camera/image_raw --params-file config/rns.yaml

Lifecycle: configure locks `memory_dir` (one writer per memory), fixes glibc's mmap threshold
(process_memory.py), builds the engine (models on the device), restores the memory and adds the
initial `classes`, then creates the parts; activate subscribes to the cameras and starts the
worker; deactivate stops both; cleanup frees the models and the memory_dir. With `autostart`
(default) the node configures and activates itself on start. Every callback is guarded (guard.py):
an error inside one is logged and counted, never the end of the process. Parameters (params.py) are read into NodeConfig/EngineConfig; runtime ones apply at once.

The parts (docs/architecture.md shows a frame's and a teaching request's path through them):
  engine.py                 the RNS engine (the one place touching rns_ros.core)
  engine_log.py             what the engine says, on the node's logger
  inputs/cameras.py         each camera: input subscription, outputs, statistics, newest frame
  frame_loop.py             subscription callback -> mailboxes -> worker -> engine -> outputs
  outputs/frames.py         ~/labels, ~/confidence, ~/overlay, ~/labels_color (per camera)
  outputs/class_map.py      ~/class_map and ~/label_info (latched)
  depth/output.py           depth input, ~/points and the aligned outputs (depth.*, per camera)
  teaching/teacher.py       the teaching handlers; teaching/services.py puts them on the node
  fleet/link.py             the memory shared with other robots (fleet.enabled)
  outputs/diagnostics.py    /diagnostics
The console script's main (signals, executor) is rns_ros/cli/node.py.
"""
from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from rns_ros import process_memory
from rns_ros.core.advice import explain
from rns_ros.core.memory.dir_lock import MemoryDirBusy, MemoryDirLock
from rns_ros.core.memory.names import describe_names
from rns_ros.ros import params
from rns_ros.ros.depth.aligned import class_id_ceiling
from rns_ros.ros.depth.output import DepthOutput
from rns_ros.ros.engine import Engine, EngineFactory, build_engine
from rns_ros.ros.engine_log import core_log_on, log_engine_notes
from rns_ros.ros.fleet.link import FleetLink
from rns_ros.ros.frame_loop import FrameLoop
from rns_ros.ros.guard import CallbackGuard
from rns_ros.ros.inputs.cameras import SINGLE_CAMERA_TOPIC, Camera, click_frames, make_cameras, teaching_image
from rns_ros.ros.inputs.qos import image_qos
from rns_ros.ros.outputs import diagnostics
from rns_ros.ros.outputs.class_map import ClassMapOutput
from rns_ros.ros.outputs.diagnostics import DiagnosticsOutput
from rns_ros.ros.outputs.frames import FrameOutputs
from rns_ros.ros.stats import PipelineStats
from rns_ros.ros.teaching.memory_store import default_memory_dir
from rns_ros.ros.teaching.prompting import prompt_masker_factory
from rns_ros.ros.teaching.services import TeachingInterfaces
from rns_ros.ros.teaching.teacher import Teacher

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
        self.stats = PipelineStats()  # every camera's frames (the totals)
        # The parts, built on configure and released on cleanup:
        self.engine: Engine | None = None
        self.teacher: Teacher | None = None  # teaching handlers (docs/teaching.md)
        self.cameras: list[Camera] = []  # each with its outputs (and depth output)
        self.frame_loop: FrameLoop | None = None
        self.class_map_output: ClassMapOutput | None = None
        self._teaching: TeachingInterfaces | None = None
        self.fleet: FleetLink | None = None  # fleet.enabled: the memory shared with other robots
        self._diagnostics: DiagnosticsOutput | None = None
        self._memory_lock: MemoryDirLock | None = None  # held from configure to cleanup
        self._configured = False
        self._active = False
        self._last_transition_error: str | None = None
        self.autostart_error: str | None = None
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

    def _fail(self, what: str, exc: BaseException) -> TransitionCallbackReturn:
        self._last_transition_error = f"{what}: {explain(exc, params.ERROR_SPELLING)}"
        self.get_logger().error(self._last_transition_error)
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg, name = self.engine_config, self.get_fully_qualified_name()
        self.get_logger().info(f"configuring: backbone {cfg.backbone!r} on {cfg.device!r}, mode {cfg.mode!r}")
        from rns_ros.core.backbones import BACKBONE_PRESETS

        if getattr(BACKBONE_PRESETS.get(cfg.backbone), "test_only", False):
            self.get_logger().warning(f"backbone {cfg.backbone!r} has RANDOM weights: for tests and smoke "
                                      "runs only, its labels are meaningless")
        memory_dir = self.node_config.memory_dir or default_memory_dir(name)
        self._memory_lock = MemoryDirLock(memory_dir, owner=f"node {name}",
                                          fix="give each node its own directory: -p memory_dir:=<another directory>")
        try:  # before loading anything: no other process may write this memory directory
            self._memory_lock.acquire()
        except (OSError, MemoryDirBusy) as exc:
            return self._fail("could not use the memory directory", exc)
        if not process_memory.return_large_blocks():  # teaching for days must not grow the process
            self.get_logger().info("not on glibc: freed memory is kept or returned as the C library decides")
        try:
            with core_log_on(self.get_logger()):  # e.g. a runtime's one-time ONNX export (20-40 s)
                engine = self._engine_factory(cfg)
        except Exception as exc:  # weights missing, device policy, bad checkpoint ...
            self._memory_lock.release()
            return self._fail("could not build the engine", exc)
        log_engine_notes(engine, self.get_logger())
        teacher = self._make_teacher(engine, memory_dir)
        try:
            teacher.restore(initial_classes=self.node_config.classes)
        except Exception as exc:
            self._memory_lock.release()
            engine.close()
            return self._fail("could not add the initial classes", exc)
        self.engine, self.teacher = engine, teacher
        self._build_parts()
        self._configured = True
        names = describe_names(e.name for e in engine.classes())
        self.get_logger().info(f"configured on {engine.device}; classes: {names}")
        return TransitionCallbackReturn.SUCCESS

    def _build_parts(self) -> None:
        """Cameras with their outputs, the class map, the frame loop, teaching, the fleet link and
        diagnostics."""
        config = self.node_config
        self.cameras = make_cameras(config.cameras, self.stats)
        for camera in self.cameras:
            camera.outputs = FrameOutputs(self, camera.prefix)
            if config.depth.enabled:
                camera.depth = DepthOutput(self, config.depth, guard=self.guard, **camera.depth_topics(),
                                           warn=lambda text: self.frame_loop.warn(text), info=self.get_logger().info)
        self.class_map_output = ClassMapOutput(self, config.colors())
        self.frame_loop = FrameLoop(self.cameras, self.engine, self.class_map_output,
                                    settings=lambda: self.node_config,
                                    paused=lambda: self.teacher is None or not self.teacher.processing_enabled,
                                    warn=self.get_logger().warning)
        clicks = click_frames(self.cameras, lambda: self.node_config.max_image_pixels)
        self._teaching = TeachingInterfaces(self, self.teacher, lambda: self.node_config.teach_class, self.guard,
                                            clicks)
        if config.fleet.enabled:  # after the restore: what the memory holds then is not a change
            self.fleet = FleetLink(self, config.fleet, self.engine, self.teacher, self.guard,
                                   on_change=self.publish_class_map, max_image_pixels=config.max_image_pixels)
            self.teacher.before_save = self.fleet.before_save
        fleet_status = lambda: [self.fleet.status(self.get_fully_qualified_name())] if self.fleet else []  # noqa: E731
        self._diagnostics = DiagnosticsOutput(self, config.diagnostics_period_s,
                                              lambda: [self.diagnostic_status()] + self.camera_statuses()
                                              + fleet_status(), self.guard.wrap)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            qos = image_qos(self.node_config.image_qos, self.node_config.image_qos_depth)
        except ValueError as exc:
            return self._fail("could not activate", exc)
        self.frame_loop.start()
        for camera in self.cameras:
            camera.subscribe(self, self.node_config.image_transport, qos,
                             self.guard.wrap("image", self.frame_loop.on_image))
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
        self.close()
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        self.get_logger().error("a transition failed: stopped and released everything (unconfigured)")
        return TransitionCallbackReturn.SUCCESS

    def _stop_pipeline(self) -> None:
        """Unsubscribe, stop the worker (after its current frame), forget the pending frames."""
        self._active = False
        for camera in self.cameras:
            camera.unsubscribe(self)
            if camera.depth is not None:
                camera.depth.unsubscribe()
        if self.frame_loop is not None:
            self.frame_loop.stop()

    def _make_teacher(self, engine, memory_dir) -> Teacher:
        logger = self.get_logger()

        def frame(attribute: str):
            return lambda: teaching_image(getattr(self.frame_loop, attribute, None), self.node_config.max_image_pixels)

        return Teacher(engine, memory_dir=memory_dir, latest_frame=frame("latest_image"),
                       latest_valid_frame=frame("latest_valid_image"),
                       masker=prompt_masker_factory(engine, self.engine_config.proposals),
                       on_change=self.publish_class_map, stamp=lambda: self.get_clock().now().to_msg(),
                       palette=lambda: self.node_config.colors(),
                       log_error=logger.error, log_info=logger.info,
                       max_image_pixels=self.node_config.max_image_pixels,
                       class_id_ceiling=lambda: class_id_ceiling(self.node_config.depth))


    @property
    def outputs(self) -> FrameOutputs | None:
        """The first (with one camera: the only) camera's outputs."""
        return self.cameras[0].outputs if self.cameras else None

    @property
    def depth_output(self) -> DepthOutput | None:
        """The first (with one camera: the only) camera's depth output (depth.enabled)."""
        return self.cameras[0].depth if self.cameras else None

    def _release(self) -> None:
        """Destroy every part (publishers, services, timer), free the engine and the memory_dir."""
        for part in [self.fleet, self._teaching, self._diagnostics, self.class_map_output] + \
                [o for c in self.cameras for o in (c.outputs, c.depth)]:
            if part is not None:
                part.destroy()
        for camera in self.cameras:
            camera.outputs = camera.depth = None
        if self.teacher is not None:
            self.teacher.store.wait_for_writes()  # a save under way finishes before memory_dir is let go
        self._teaching = self._diagnostics = self.class_map_output = self.frame_loop = self.teacher = None
        self.fleet = None
        if self._memory_lock is not None:
            self._memory_lock.release()  # another node may use this memory_dir now
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self._configured = False

    def close(self) -> None:
        """Stop everything this node started (call before destroy_node)."""
        self._stop_pipeline()
        self._release()

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


def _parameters_refused(new_params, exc: BaseException) -> SetParametersResult:
    return SetParametersResult(successful=False, reason=f"internal error: {exc!r}")
