"""ROS parameters of the `rns` node: one table mapping parameter names to config fields.

Defaults are not written here: each comes from a field of `NodeConfig` (below), `EngineConfig`
(engine.py) or the core's `AdapterConfig` / `ProposalConfig`. The table adds the ROS side: the
name, a description, a range or choices, and whether a change applies while the node is
configured (`runtime`) or only at the next configure. Values are validated by building the
configs from them (the dataclasses' own checks), so the node and the library refuse the same
values with the same reasons. Unknown parameter names are refused, never ignored.
Why this file is over 300 lines: the table is deliberately one list (every parameter's
declaration, validation and documentation follow from it); split, it would scatter them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.memory.names import check_new_names, clean_name
from rns_ros.core.profiles import PROFILE_NAMES
from rns_ros.core.regions.proposals import ProposalConfig
from rns_ros.ros.depth.projection import DEPTH_TRANSPORTS, DepthConfig
from rns_ros.ros.fleet.config import FleetConfig
from rns_ros.ros.conversions import CONFIDENCE_ENCODINGS
from rns_ros.ros.engine import MODES, PRECISIONS, RUNTIME_CHOICES, EngineConfig
from rns_ros.ros.name_lists import parse_names
from rns_ros.visual import BUILT_IN, DEFAULT_PALETTE, LegendStyle, OverlayStyle, Palette, parse_palette

IMAGE_QOS = ("sensor_data", "reliable")
IMAGE_TRANSPORTS = ("raw", "compressed")
CAMERA_BATCHING = ("auto", "on", "off")
_CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NodeConfig:
    """Settings of the node itself (the engine's are in EngineConfig)."""

    classes: tuple[str, ...] = ()  # class names added (with text) on configure
    autostart: bool = True  # configure + activate at start; false = wait for a lifecycle manager
    image_qos: str = "sensor_data"  # subscription QoS: sensor_data (best effort) | reliable
    image_qos_depth: int = 5  # subscription history depth (the mailbox keeps only the newest anyway)
    publish_confidence: bool = True  # publish ~/confidence (32FC1)
    overlay_alpha: float = 0.5  # class colour weight in ~/overlay
    overlay_legend: bool = True  # ~/overlay lists the classes present (swatch, name, pixel share)
    overlay_contours: bool = False  # ~/overlay outlines the classes
    palette: str | tuple[str, ...] = DEFAULT_PALETTE  # class colours: a built-in name or hex colours by class id
    diagnostics_period_s: float = 1.0  # /diagnostics publishing period
    max_image_pixels: int = 16_777_216  # larger frames are dropped (counted) instead of exhausting memory
    memory_dir: str = ""  # support memory directory, saved on every change ('' = $ROS_HOME/rns_ros/<node>)
    teach_class: str = ""  # class that clicks on ~/click teach ('' = clicks are ignored)
    depth: DepthConfig = field(default_factory=DepthConfig)  # the semantic point cloud (~/points)
    fleet: FleetConfig = field(default_factory=FleetConfig)  # the memory shared with other robots
    min_confidence: float = 0.0  # pixels whose winning probability is below it get id 0 (0 = off)
    confidence_encoding: str = "32FC1"  # ~/confidence as 32FC1 probabilities or mono8 (x 255, for Nav2)
    image_transport: str = "raw"  # raw: sensor_msgs/Image on `image`; compressed: CompressedImage on `image/compressed`
    cameras: tuple[str, ...] = ()  # camera names ('' = one camera on `image`); each c reads `c/image`
    camera_batching: str = "auto"  # several cameras' waiting frames through the backbone at once: auto = on CUDA

    def __post_init__(self):
        if self.image_qos not in IMAGE_QOS:
            raise ValueError(f"image_qos must be one of {IMAGE_QOS}, got {self.image_qos!r}")
        if not 1 <= self.image_qos_depth <= 1000:
            raise ValueError(f"image_qos_depth must be in 1..1000, got {self.image_qos_depth}")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be in [0, 1], got {self.overlay_alpha}")
        if not 0.05 <= self.diagnostics_period_s <= 3600.0:
            raise ValueError(f"diagnostics_period_s must be in [0.05, 3600], got {self.diagnostics_period_s}")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be >= 1, got {self.max_image_pixels}")
        # the one name rule (rns_ros/core/memory/names.py), as the teaching services apply it
        check_new_names(self.classes)
        if self.teach_class.strip():
            clean_name(self.teach_class, "teach_class")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        for name, value, choices in (("confidence_encoding", self.confidence_encoding, CONFIDENCE_ENCODINGS),
                                     ("image_transport", self.image_transport, IMAGE_TRANSPORTS),
                                     ("camera_batching", self.camera_batching, CAMERA_BATCHING)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be unique, got {list(self.cameras)}")
        bad = [c for c in self.cameras if not _CAMERA_NAME.match(c)]
        if bad:
            raise ValueError(f"camera names become topic names (c/image, ~/c/labels): use letters, digits and "
                             f"'_', starting with a letter; got {bad}")
        self.colors()  # a bad palette is refused with its reason

    def colors(self) -> Palette:
        """The palette of `palette`."""
        return parse_palette(self.palette)

    def overlay_style(self) -> OverlayStyle:
        """How ~/overlay is drawn."""
        return OverlayStyle(alpha=self.overlay_alpha, legend=LegendStyle() if self.overlay_legend else None,
                            contours=self.overlay_contours)


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: where its value goes and how it is described."""

    name: str  # ROS parameter name ("adapter.steps" = key steps under adapter: in YAML)
    target: str  # "node" | "depth" | "fleet" | "engine" | "adapter" | "proposals": which config it sets
    field: str  # field of that config
    description: str
    runtime: bool = False  # True: may change while configured (applies to the next frame)
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None  # inclusive bounds shown to ROS tools
    none_if_empty: bool = False  # '' in ROS stands for the field's None


PARAMETERS: tuple[ParamSpec, ...] = (
    # --- the node
    ParamSpec("classes", "node", "classes",
              "Initial class names, added on configure: a comma-separated string ('car, person') or "
              "a list of strings; names are stripped, at most 128 characters, unique without case "
              "(the teaching services' rule). Later changes: the ~/add_classes and ~/remove_classes services."),
    ParamSpec("autostart", "node", "autostart",
              "Configure and activate on start. false: stay unconfigured until a lifecycle manager "
              "(or `ros2 lifecycle set`) drives the transitions."),
    ParamSpec("image_qos", "node", "image_qos",
              "QoS of the `image` subscription: sensor_data (best effort, keep last; matches reliable "
              "and best-effort cameras) or reliable (only reliable publishers). Read on activate.", choices=IMAGE_QOS),
    ParamSpec("image_qos_depth", "node", "image_qos_depth",
              "History depth of the `image` subscription. Read on activate.", range=(1, 1000)),
    ParamSpec("publish_confidence", "node", "publish_confidence",
              "Publish ~/confidence (32FC1, probability of the winning class).", runtime=True),
    ParamSpec("overlay_alpha", "node", "overlay_alpha",
              "Weight of the class colour in ~/overlay (0 = input only, 1 = colours only).",
              runtime=True, range=(0.0, 1.0)),
    ParamSpec("overlay_legend", "node", "overlay_legend",
              "Draw a legend on ~/overlay: a colour swatch, the name and the pixel share of each class present, "
              "largest first, in the corner that hides least.", runtime=True),
    ParamSpec("overlay_contours", "node", "overlay_contours",
              "Outline the classes on ~/overlay (boundary pixels in the pure class colour).", runtime=True),
    ParamSpec("palette", "node", "palette",
              f"Class colours of ~/overlay, ~/labels_color and the class map: a built-in palette "
              f"({', '.join(BUILT_IN)}; okabe-ito is colour-blind safe) or hex colours '#RRGGBB' by class id "
              "(a list, or one comma-separated string); a list shorter than the class ids is reused from "
              "its start.", runtime=True),
    ParamSpec("diagnostics_period_s", "node", "diagnostics_period_s",
              "Period of the /diagnostics status in seconds.", range=(0.05, 3600.0)),
    ParamSpec("max_image_pixels", "node", "max_image_pixels",
              "Frames with more pixels are dropped (counted, reason logged).", runtime=True,
              range=(1, 2**31 - 1)),
    ParamSpec("memory_dir", "node", "memory_dir",
              "Directory of the support memory: restored on configure, saved atomically after every "
              "teaching change. '' = $ROS_HOME/rns_ros/<node name> (ROS_HOME defaults to ~/.ros)."),
    ParamSpec("teach_class", "node", "teach_class",
              "Class that a click on ~/click (geometry_msgs/PointStamped) teaches through a SAM 2 point "
              "prompt on the latest frame; created if missing. '' = clicks are ignored.", runtime=True),
    # --- the semantic point cloud from an aligned depth camera (rns_ros.ros.depth.projection.DepthConfig)
    ParamSpec("depth.enabled", "depth", "enabled",
              "Subscribe to depth/image (16UC1 mm or 32FC1 m, registered to the colour image) and "
              "depth/camera_info, and publish ~/points (PointCloud2: x, y, z, rgb, label, confidence); "
              "with several cameras, camera c: c/depth/image, c/depth/camera_info -> ~/c/points."),
    ParamSpec("depth.max_time_diff_s", "depth", "max_time_diff_s",
              "A colour frame pairs with the depth frame nearest in stamp within this many seconds; "
              "frames without one are counted in /diagnostics (depth_unpaired), never guessed.",
              runtime=True, range=(0.0, 10.0)),
    ParamSpec("depth.max_range_m", "depth", "max_range_m",
              "Depth beyond this many metres gives no point (0 and NaN never do).", runtime=True,
              range=(0.01, 10_000.0)),
    ParamSpec("depth.stride", "depth", "stride",
              "Use every stride-th depth pixel of every stride-th row (1 = every pixel; 2 = a quarter).",
              runtime=True, range=(1, 64)),
    ParamSpec("depth.transport", "depth", "transport",
              "raw: depth/image is a sensor_msgs/Image; compressedDepth: read sensor_msgs/CompressedImage "
              "on the resolved depth/image topic + /compressedDepth (image_transport's plugin, png codec).",
              choices=DEPTH_TRANSPORTS),
    ParamSpec("depth.aligned_outputs", "depth", "aligned_outputs",
              "Also publish ~/aligned/labels (mono8), ~/aligned/confidence (mono8) and ~/aligned/points (organised "
              "PointCloud2, NaN where depth is missing) on the depth image's grid subsampled by depth.stride, with the "
              "colour frame's stamp: one point per label pixel, what Nav2's semantic costmap layer needs. Needs "
              "depth.enabled; class ids above 255 are then refused at teaching time."),
    ParamSpec("min_confidence", "node", "min_confidence",
              "Pixels whose winning class probability is below this get the unlabeled id 0 (\"none of the "
              "taught classes\"); 0 = off. ~/label_info carries it as its threshold.",
              runtime=True, range=(0.0, 1.0)),
    ParamSpec("confidence_encoding", "node", "confidence_encoding",
              "~/confidence encoding: 32FC1 (probability) or mono8 (probability x 255, rounded; what "
              "Nav2's semantic costmap layer reads).", runtime=True, choices=CONFIDENCE_ENCODINGS),
    ParamSpec("image_transport", "node", "image_transport",
              "raw: sensor_msgs/Image on `image`. compressed: sensor_msgs/CompressedImage (JPEG, PNG) on "
              "the resolved `image` topic + /compressed, as image_transport names it. Read on activate.",
              choices=IMAGE_TRANSPORTS),
    ParamSpec("cameras", "node", "cameras",
              "Camera names for several cameras on one model ('front, left' or a list); [] = one camera "
              "on `image` with the outputs ~/labels ... Camera c reads `c/image` and publishes ~/c/labels, "
              "~/c/confidence, ~/c/overlay; class map, label info, services and memory stay shared."),
    ParamSpec("camera_batching", "node", "camera_batching",
              "Run the frames waiting in several cameras through the backbone as one batch (shared model "
              "calls): auto = on CUDA only (on the CPU it was measured not to pay, scripts/bench_batching.py), "
              "on, off.", runtime=True, choices=CAMERA_BATCHING),
    # --- the memory shared with the fleet (rns_ros.ros.fleet.config.FleetConfig; docs/teaching.md "Fleet")
    ParamSpec("fleet.enabled", "fleet", "enabled",
              "Share the support memory with every node on fleet.topic: publish this node's teaching, merge "
              "the others' (classes by name, exemplars by content hash, removals for good)."),
    ParamSpec("fleet.topic", "fleet", "topic",
              "Absolute topic of the fleet's memory changes (rns_ros/FleetChange); snapshots for late joiners "
              "on <topic>/snapshot. One topic per fleet."),
    ParamSpec("fleet.robot_id", "fleet", "robot_id",
              "This robot's id in the fleet, unique; '' = the node's fully qualified name + '@' + host name. "
              "A message from another node using it is refused and reported in /diagnostics."),
    ParamSpec("fleet.share_masks", "fleet", "share_masks",
              "Also send each exemplar's image and label map (large), and keep the ones received (so they "
              "can be re-encoded for another backbone); false = features only."),
    ParamSpec("fleet.accept_from", "fleet", "accept_from",
              "Robot ids whose fleet messages are merged ('a, b' or a list); [] = every robot. Ids are "
              "claimed, not proven: SROS2 authenticates (docs/teaching.md)."),
    ParamSpec("fleet.max_message_mb", "fleet", "max_message_mb",
              "Received fleet messages carrying more (features, text, images) are refused, counted.",
              range=(0.001, 65536.0)),
    ParamSpec("fleet.snapshot_period_s", "fleet", "snapshot_period_s",
              "The snapshot of everything this node holds is republished at most this often, after a change.",
              range=(0.05, 3600.0)),
    # --- the engine
    ParamSpec("backbone", "engine", "backbone",
              "Backbone preset: openclip-vit-b16, dinov3txt-vitl16, siglip2-vitl16-512 (each needs its "
              "weights, see docs/backbones.md), openclip:<ARCH>, or test-tiny / test-tiny-dinotxt / "
              "test-tiny-siglip2 (TEST-ONLY random weights: meaningless labels)."),
    ParamSpec("checkpoint", "engine", "checkpoint",
              "Local backbone weights: a file (open_clip .bin/.safetensors); for dinov3txt-vitl16 the "
              "folder holding its two official files or 'BACKBONE.pth,DINOTXT.pth'. '' = the preset's "
              "weights from the Hugging Face cache (downloaded when the hub is reachable)."),
    ParamSpec("precision", "engine", "precision",
              "Precision of the backbone's image encoder: fp32, bf16, fp16 (CUDA only), int8 (runtime "
              "onnxruntime on a CPU); each runtime has its own set (docs/backbones.md, 'Runtimes'). Left at "
              "fp32, the profile's applies (cuda: bf16; cpu-fast: bf16 where the CPU computes it natively).", choices=PRECISIONS),
    ParamSpec("runtime", "engine", "runtime",
              "What computes the image encoder: auto (the profile's: torch, or under cpu-fast OpenVINO on CPUs "
              "with AMX), torch, onnxruntime (CPU; CUDA), tensorrt (CUDA, fp16 engines cached on disk), "
              "openvino (CPU). The backbone identity, and so the memory, stay the same.", choices=RUNTIME_CHOICES),
    ParamSpec("onnx_model", "engine", "onnx_model",
              "The folder rns-export wrote for a runtime other than torch (checked against the backbone); "
              "'' = export the backbone once into ~/.cache/rns_ros/onnx and use that."),
    ParamSpec("device", "engine", "device", "Torch device: cuda, cuda:N or cpu."),
    ParamSpec("allow_cpu_fallback", "engine", "allow_cpu_fallback",
              "When device is cuda* and no CUDA device is visible: true = run on the CPU (logged as an "
              "error and flagged in /diagnostics), false = fail to configure."),
    ParamSpec("mode", "engine", "mode",
              "patch: every 16x16 patch is a query (fast). region: SAM 2 regions are the queries "
              "(sharper edges, seconds per frame, needs SAM 2 weights).", choices=MODES),
    ParamSpec("profile", "engine", "profile",
              "Named settings: auto (cuda on a GPU, default elsewhere; the choice is logged), default (the "
              "paper's protocol, fp32), cuda (bf16 backbone and SAM 2, TF32 outside the adapter, the adapter "
              "in fp32) or cpu-fast (for CPUs: one window at short side 224, bf16 where the CPU has it "
              "natively, 140 adapter steps at lr 0.01; coarser, faster). Its values apply to precision, "
              "adapter.steps, adapter.lr and SAM 2's precision while they are left at their defaults.",
              choices=PROFILE_NAMES),
    # --- test-time adapter (rns_ros.core.adapter.AdapterConfig)
    ParamSpec("adapter.steps", "adapter", "steps",
              "Test-time training steps per frame (fewer = faster; the paper uses 700).",
              runtime=True, range=(1, 100_000)),
    ParamSpec("adapter.solver", "adapter", "solver",
              "fast (the reference loop's predictions to float rounding, faster), plain (reference loop) or "
              "lbfgs (approximate).", runtime=True, choices=("fast", "plain", "lbfgs")),
    ParamSpec("adapter.k", "adapter", "k", "Support features retrieved per query.", runtime=True,
              range=(1, 1024)),
    ParamSpec("adapter.tau", "adapter", "tau", "Temperature of the class relevance weights.",
              runtime=True, range=(1e-6, 100.0)),
    ParamSpec("adapter.lr", "adapter", "lr", "Learning rate of the test-time training.", runtime=True,
              range=(1e-9, 10.0)),
    ParamSpec("adapter.use_text", "adapter", "use_text",
              "Use the class names' text features (false = visual exemplars only).", runtime=True),
    ParamSpec("adapter.seed", "adapter", "seed", "Seed of the adapter's random start.", runtime=True,
              range=(0, 2**31 - 1)),
    ParamSpec("adapter.cpu_threads", "adapter", "cpu_threads",
              "CPU threads of the fast solver's steps (0 = torch's own count). 1 is steadiest where other "
              "processes share the cores; 2 is ~1.3x faster on two idle cores (docs/adapter.md, Threads).",
              runtime=True, range=(0, 256)),
    # --- SAM 2 region proposals (mode region; rns_ros.core.regions.proposals.ProposalConfig)
    ParamSpec("regions.model", "proposals", "model", "SAM 2 model preset for region mode."),
    ParamSpec("regions.checkpoint", "proposals", "checkpoint",
              "Local SAM 2.1 checkpoint (.pt) for region mode ('' = none).", none_if_empty=True),
    ParamSpec("regions.points_per_side", "proposals", "points_per_side",
              "Automatic-mask point grid per side.", range=(1, 128)),
    ParamSpec("regions.points_per_batch", "proposals", "points_per_batch",
              "Prompts per SAM 2 decoder call (memory vs speed only); 0 = by device: 512 on CUDA (the "
              "paper's), 64 on a CPU. Lower it on a small GPU.", range=(0, 4096)),
)
SPECS: dict[str, ParamSpec] = {s.name: s for s in PARAMETERS}
_DEFAULT_CONFIGS = {"node": NodeConfig(), "depth": DepthConfig(), "fleet": FleetConfig(), "engine": EngineConfig(),
                    "adapter": AdapterConfig(), "proposals": ProposalConfig()}
# Parameters every rclpy node has (or that ROS tooling passes), which are not ours to refuse.
ROS_OWNED_PARAMETERS = ("use_sim_time", "start_type_description_service")
ROS_OWNED_PREFIXES = ("qos_overrides.",)


# How the node names a setting in an error text (rns_ros.core.advice): `-p checkpoint:=FILE`.
ERROR_SPELLING: dict[str, str] = {spec.name: f"-p {spec.name}:={{value}}" for spec in PARAMETERS}


def default_value(spec: ParamSpec) -> Any:
    """The parameter's default as a ROS value (tuples become lists, None becomes '')."""
    value = getattr(_DEFAULT_CONFIGS[spec.target], spec.field)
    if value is None and spec.none_if_empty:
        return ""
    return list(value) if isinstance(value, tuple) else value


def _palette_value(value: Any) -> str | tuple[str, ...]:
    """`palette` as NodeConfig holds it (a name, or a tuple of hex strings); ValueError naming the
    parameter and the bad entry."""
    try:
        parse_palette(value)
    except ValueError as exc:
        raise ValueError(f"parameter 'palette': {exc} (set it with -p palette:=okabe-ito or "
                         "-p \"palette:=['#FF0000', '#00FF00']\")") from None
    return tuple(value) if isinstance(value, (list, tuple)) else value


# Parameters holding a list of names, given as a list or one comma-separated string.
NAME_LISTS = ("classes", "cameras", "fleet.accept_from")


def unknown_parameters(names: Iterable[str]) -> list[str]:
    """Names that are neither in the table nor owned by ROS itself."""
    return sorted(n for n in names if n not in SPECS and n not in ROS_OWNED_PARAMETERS
                  and not n.startswith(ROS_OWNED_PREFIXES))


def build_configs(values: Mapping[str, Any]) -> tuple[NodeConfig, EngineConfig]:
    """NodeConfig and EngineConfig from parameter values (missing names keep their defaults).

    Raises ValueError naming the parameter for unknown names, wrong types and invalid values.
    """
    unknown = unknown_parameters(values)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(SPECS)}")
    changes: dict[str, dict[str, Any]] = {t: {} for t in _DEFAULT_CONFIGS}
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            continue
        default = getattr(_DEFAULT_CONFIGS[spec.target], spec.field)
        if spec.name in NAME_LISTS:
            value = parse_names(value, spec.name)
        elif spec.name == "palette":
            value = _palette_value(value)
        elif spec.none_if_empty and value == "":
            value = None
        elif isinstance(default, bool) != isinstance(value, bool) or (
                default is not None and not isinstance(value, type(default))
                and not (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool))):
            raise ValueError(f"parameter {name!r} must be a {type(default).__name__}, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise ValueError(f"parameter {name!r} must be one of {list(spec.choices)}, got {value!r}")
        if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
            raise ValueError(f"parameter {name!r} must be in [{spec.range[0]}, {spec.range[1]}], got {value!r}")
        changes[spec.target][spec.field] = float(value) if isinstance(default, float) else value
    try:
        adapter = replace(_DEFAULT_CONFIGS["adapter"], **changes["adapter"])
        proposals = replace(_DEFAULT_CONFIGS["proposals"], **changes["proposals"])
        engine = replace(_DEFAULT_CONFIGS["engine"], adapter=adapter, proposals=proposals, **changes["engine"])
        depth = replace(_DEFAULT_CONFIGS["depth"], **changes["depth"])
        fleet = replace(_DEFAULT_CONFIGS["fleet"], **changes["fleet"])
        node = replace(_DEFAULT_CONFIGS["node"], depth=depth, fleet=fleet, **changes["node"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid parameter value: {exc}") from exc
    return node, engine


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS descriptor of a parameter: description, constraints, range; `classes` takes a
    string or a string list, so it is dynamically typed."""
    constraints = []
    if spec.choices:
        constraints.append("one of: " + ", ".join(spec.choices))
    constraints.append("changes apply to the next frame" if spec.runtime
                       else "read on configure: change it while unconfigured")
    desc = ParameterDescriptor(name=spec.name, description=spec.description,
                               additional_constraints="; ".join(constraints))
    default = default_value(spec)
    if spec.name in NAME_LISTS + ("palette",):
        desc.dynamic_typing = True
    elif spec.range is not None and isinstance(default, float):
        desc.type = ParameterType.PARAMETER_DOUBLE
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                        to_value=float(spec.range[1]))]
    elif spec.range is not None and isinstance(default, int) and not isinstance(default, bool):
        desc.type = ParameterType.PARAMETER_INTEGER
        desc.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
    return desc
