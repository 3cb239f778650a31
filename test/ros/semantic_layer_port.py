"""What Nav2's semantic costmap layer does with the messages it is given, ported to Python for tests.

Source: ros-navigation/semantic_segmentation_layer, branch `jazzy` (commit d1914ba), the branch that
builds against Jazzy's nav2_util (the default branch needs nav2_ros_common, Kilted and later).
Every rule below names the file and function it comes from:

* src/semantic_segmentation_layer.cpp, SemanticSegmentationLayer::onInitialize: one observation
  source subscribes to `segmentation_topic` and `confidence_topic` (sensor_msgs/Image) and
  `pointcloud_topic` (sensor_msgs/PointCloud2, through a tf2_ros::MessageFilter to the costmap's
  global frame), all with rmw_qos_profile_sensor_data at depth `sensor_data_depth` (default 10), and
  pairs them with message_filters ApproximateTime (queue `sensor_data_depth`, max interval 0.1 s)
  when `use_approximate_time_sync` (default true), else with TimeSynchronizer (exact stamps, queue
  `sensor_data_depth`). `labels_topic` (vision_msgs/LabelInfo) is reliable + transient local, depth 5.
  Per-class parameters (`<type>.classes`, base_cost, max_cost, mark_confidence, samples_to_max_cost,
  dominant_priority) are read here, once.
* same file, syncSegmConfPointcloudCb: a set is dropped (with a warning) when
  `segmentation.width * segmentation.height != cloud.width * cloud.height`, or when the
  segmentation's data holds fewer bytes than width * height, or when no LabelInfo was turned into a
  class map yet. Nothing checks the encodings, the step or the confidence image's size.
* same file, labelinfoCb -> src/segmentation_buffer.cpp, SegmentationBuffer::createSegmentationCostMultimap:
  EVERY LabelInfo rebuilds the name -> id map; names not listed in the parameters are skipped
  ("CRITICAL ERROR ... will be ignored", at INFO level); ids are stored as uint8_t (a uint16 id is
  cut to its low byte).
* src/segmentation_buffer.cpp, SegmentationBuffer::bufferSegmentation: the cloud is transformed to
  the global frame; pixel (v, u) of the mask is point v * width + u of the cloud (x/y/z iterators
  advanced once per pixel, so row_step is ignored); points with non-finite z, or whose squared
  distance to the sensor origin is >= max_obstacle_distance^2 or <= min_obstacle_distance^2, are
  skipped; the class is `segmentation.data[v * width + u]` and the confidence
  `confidence.data[v * width + u]`, one byte each, whatever the encoding and step. Per frame one
  pixel per tile is kept (use_cost_selection: the highest max_cost, else the highest confidence;
  the first pixel wins ties), and only class ids in the class map become observations.
* include/semantic_segmentation_layer/segmentation_buffer.hpp, TemporalObservationQueue::push /
  purgeOld and SegmentationTileMap::worldToIndex (floor(x / resolution)); src/semantic_segmentation_layer.cpp,
  SemanticSegmentationLayer::updateBounds: a tile costs its dominant class's max_cost once that
  class has samples_to_max_cost observations whose mean confidence is > mark_confidence, else its
  base_cost; observations older than tile_map_decay_time (against the node's clock) are purged.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from message_filters_port import ApproximateTime, ExactTime

MAX_INTERVAL_NS = 100_000_000  # setMaxIntervalDuration(rclcpp::Duration(0, 100000000)) in onInitialize


@dataclass(frozen=True)
class CostParams:
    """CostHeuristicParams (segmentation_buffer.hpp): base_cost, max_cost, mark_confidence are uint8_t."""

    base_cost: int = 0
    max_cost: int = 0
    mark_confidence: int = 0
    samples_to_max_cost: int = 0
    dominant_priority: bool = False


@dataclass
class ObservationQueue:
    """TemporalObservationQueue: per-class queues of (confidence, stamp s) on one tile, one dominant."""

    decay_time: float
    queues: dict[int, list] = field(default_factory=dict)
    dominant: int = -1

    def push(self, class_id: int, confidence: float, stamp: float, dominant_priority: bool) -> None:
        queue = self.queues.setdefault(class_id, [])
        queue.append((confidence, stamp))
        dominant_size = len(self.queues[self.dominant]) if self.dominant in self.queues else 0
        if dominant_priority or len(queue) > dominant_size:
            if self.dominant not in (-1, class_id):
                self.queues = {class_id: queue}  # clearQueuesExcept
            self.dominant = class_id

    def purge_old(self, now: float) -> None:
        removed = False
        for class_id in list(self.queues):
            queue = [obs for obs in self.queues[class_id] if now - obs[1] <= self.decay_time]
            if queue:
                self.queues[class_id] = queue
            else:
                del self.queues[class_id]
                removed |= class_id == self.dominant
        if removed:  # recomputeDominant: the first class with strictly more observations wins
            self.dominant, best = -1, 0
            for class_id, queue in self.queues.items():
                if len(queue) > best:
                    best, self.dominant = len(queue), class_id
        elif self.dominant not in self.queues:
            self.dominant = -1  # resetDominant

    def samples(self) -> list:
        return self.queues.get(self.dominant, [])


def read_field(cloud, name: str) -> np.ndarray:
    """PointCloud2ConstIterator<float>(cloud, name): the float32 field of point i at
    i * point_step, for i < width * height (row_step is not used)."""
    offset = next(f.offset for f in cloud.fields if f.name == name)
    return np.ndarray((cloud.width * cloud.height,), ">f4" if cloud.is_bigendian else "<f4", bytes(cloud.data),
                      offset, (cloud.point_step,)).astype(np.float64)


class SemanticLayerSource:
    """One observation source of the layer. `class_types`: type -> (class names, CostParams), as
    in the YAML. `global_from_cloud(frame_id, stamp_ns)`: 4x4 transform of the cloud's frame into
    the costmap's global frame (what tf2 gives the layer)."""

    def __init__(self, class_types: dict[str, tuple[list[str], CostParams]], global_from_cloud, *,
                 resolution: float = 0.05, use_approximate_time_sync: bool = True, sensor_data_depth: int = 10,
                 max_obstacle_distance: float = 5.0, min_obstacle_distance: float = 0.3,
                 tile_map_decay_time: float = 5.0, use_cost_selection: bool = True):
        self.cost_by_name = {name: params for names, params in class_types.values() for name in names}
        self.global_from_cloud = global_from_cloud
        self.resolution, self.decay_time = resolution, tile_map_decay_time
        self.sq_max, self.sq_min = max_obstacle_distance ** 2, min_obstacle_distance ** 2
        self.use_cost_selection = use_cost_selection
        self.id_by_name: dict[str, int] | None = None  # None: no LabelInfo yet (a null multimap in C++)
        self.cost_by_id: dict[int, CostParams] = {}
        self.tiles: dict[tuple[int, int], ObservationQueue] = {}
        self.taken: list[tuple] = []  # (segmentation, confidence, cloud) sets the synchroniser emitted
        self.buffered: list[tuple] = []  # the sets that became observations
        self.handled = 0  # sets whose callback has returned (taken, then buffered or warned about)
        self.warnings: list[str] = []
        self.ignored_names: list[str] = []
        self._lock = threading.Lock()  # the C++ buffer lock: callbacks may come from several threads
        if use_approximate_time_sync:
            self.sync = ApproximateTime(3, sensor_data_depth, self._on_set, max_interval_ns=MAX_INTERVAL_NS)
        else:
            self.sync = ExactTime(3, sensor_data_depth, self._on_set)

    # ---------------------------------------------------------------- subscriptions
    def on_label_info(self, msg) -> None:
        """createSegmentationCostMultimap: rebuilt on every LabelInfo."""
        with self._lock:
            ids = {}
            for vision_class in msg.class_map:
                if vision_class.class_name not in self.cost_by_name:
                    self.ignored_names.append(vision_class.class_name)
                    continue
                ids[vision_class.class_name] = vision_class.class_id & 0xFF  # uint8_t
            self.id_by_name = ids
            self.cost_by_id = {cid: self.cost_by_name[name] for name, cid in ids.items()}

    def on_segmentation(self, msg) -> None:
        self._add(0, msg)

    def on_confidence(self, msg) -> None:
        self._add(1, msg)

    def on_pointcloud(self, msg) -> None:
        self._add(2, msg)

    def _add(self, i: int, msg) -> None:
        with self._lock:
            self.sync.add(i, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, msg)

    # ---------------------------------------------------------------- syncSegmConfPointcloudCb
    def _on_set(self, segmentation, confidence, cloud) -> None:
        try:
            self._take(segmentation, confidence, cloud)
        finally:
            self.handled += 1  # the set's callback has returned, whatever it did

    def _take(self, segmentation, confidence, cloud) -> None:
        self.taken.append((segmentation, confidence, cloud))
        if segmentation.width * segmentation.height != cloud.width * cloud.height:
            self.warnings.append(f"Pointcloud and segmentation sizes are different: segmentation "
                                 f"{segmentation.width}x{segmentation.height}, pointcloud {cloud.width}x{cloud.height}")
            return
        if len(segmentation.data) < segmentation.width * segmentation.height:
            self.warnings.append("segmentation arrays have wrong sizes")
            return
        if self.id_by_name is None:
            raise RuntimeError("the layer would dereference its null segmentation_cost_multimap_ "
                               "(isClassIdCostMapEmpty before any LabelInfo): a crash of the costmap")
        if not self.id_by_name or not self.cost_by_id:
            self.warnings.append("Class map is empty because a labelinfo message has not been received")
            return
        self.buffer_segmentation(cloud, segmentation, confidence)
        self.buffered.append((segmentation, confidence, cloud))

    def buffer_segmentation(self, cloud, segmentation, confidence) -> None:
        """SegmentationBuffer::bufferSegmentation."""
        stamp_ns = cloud.header.stamp.sec * 1_000_000_000 + cloud.header.stamp.nanosec
        transform = np.asarray(self.global_from_cloud(cloud.header.frame_id, stamp_ns), np.float64)
        origin = transform[:3, 3]
        local = np.stack([read_field(cloud, "x"), read_field(cloud, "y"), read_field(cloud, "z"),
                          np.ones(cloud.width * cloud.height)])
        xs, ys, zs = (transform @ local)[:3]
        seg = bytes(segmentation.data)  # one byte per pixel, whatever the encoding
        conf = bytes(confidence.data)
        best: dict[tuple[int, int], int] = {}
        point = 0
        for v in range(segmentation.height):
            for u in range(segmentation.width):
                pixel = v * segmentation.width + u
                x, y, z = xs[point], ys[point], zs[point]
                point += 1
                if not math.isfinite(z):
                    continue
                sq = (x - origin[0]) ** 2 + (y - origin[1]) ** 2 + (z - origin[2]) ** 2
                if sq >= self.sq_max or sq <= self.sq_min:
                    continue
                tile = (math.floor(x / self.resolution), math.floor(y / self.resolution))
                if tile not in best:
                    best[tile] = pixel
                elif self.use_cost_selection:
                    if self._cost(seg[pixel]).max_cost > self._cost(seg[best[tile]]).max_cost:
                        best[tile] = pixel
                elif conf[pixel] > conf[best[tile]]:
                    best[tile] = pixel
        stamp = stamp_ns / 1e9
        self._purge(stamp)
        for tile, pixel in best.items():
            class_id = seg[pixel]
            if class_id in self.cost_by_id:
                queue = self.tiles.setdefault(tile, ObservationQueue(self.decay_time))
                queue.push(class_id, float(conf[pixel]), stamp, self.cost_by_id[class_id].dominant_priority)

    def _cost(self, class_id: int) -> CostParams:
        return self.cost_by_id.get(class_id, CostParams())  # getCostById: {0, 0, 0, 0, false} if unknown

    def _purge(self, now: float) -> None:
        for tile in list(self.tiles):
            self.tiles[tile].purge_old(now)
            if self.tiles[tile].dominant == -1:
                del self.tiles[tile]

    # ---------------------------------------------------------------- updateBounds
    def costs(self, now: float) -> dict[tuple[float, float], tuple[int, int]]:
        """Tile centre (x, y) in the global frame -> (cost, dominant class id) after purging at `now` s."""
        with self._lock:
            self._purge(now)
            out = {}
            for (ix, iy), queue in self.tiles.items():
                params = self._cost(queue.dominant)
                samples = queue.samples()
                mean = sum(c for c, _ in samples) / len(samples)
                cost = params.max_cost if (len(samples) >= params.samples_to_max_cost
                                           and mean > params.mark_confidence) else params.base_cost
                out[((ix + 0.5) * self.resolution, (iy + 0.5) * self.resolution)] = (cost, queue.dominant)
            return out


def layer_from_costmap_yaml(path, global_from_cloud, plugin: str = "semantic_segmentation_layer"):
    """(SemanticLayerSource, its four topics) for the first observation source of `plugin` in a
    Nav2 costmap parameter file (`<ns>: <node>: ros__parameters:` or `<node>: ros__parameters:`), read
    the way onInitialize reads it (the layer's defaults where the file says nothing)."""
    import yaml

    def parameters(tree):
        return tree["ros__parameters"] if "ros__parameters" in tree else parameters(next(iter(tree.values())))

    costmap = parameters(yaml.safe_load(Path(path).read_text()))
    layer = costmap[plugin]
    name = layer["observation_sources"].split()[0]
    source = layer[name]
    class_types = {kind: (source[kind]["classes"], CostParams(**{k: source[kind].get(k, default) for k, default in (
        ("base_cost", 0), ("max_cost", 0), ("mark_confidence", 0), ("samples_to_max_cost", 0),
        ("dominant_priority", False))})) for kind in source["class_types"]}
    built = SemanticLayerSource(
        class_types, global_from_cloud, resolution=costmap.get("resolution", 0.1),
        use_approximate_time_sync=layer.get("use_approximate_time_sync", True),
        sensor_data_depth=layer.get("sensor_data_depth", 10),
        max_obstacle_distance=source.get("max_obstacle_distance", 5.0),
        min_obstacle_distance=source.get("min_obstacle_distance", 0.3),
        tile_map_decay_time=source.get("tile_map_decay_time", 5.0),
        use_cost_selection=source.get("use_cost_selection", True))
    topics = {k: source[k] for k in ("segmentation_topic", "confidence_topic", "pointcloud_topic", "labels_topic")}
    return built, topics
