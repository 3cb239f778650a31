"""config/nav2_semantic_costmap.yaml loads the way Nav2 loads it (rcl's YAML parser, through a
node named like the local costmap) and every key in it is declared, with that type, by the code
that reads it on Jazzy:

* Costmap2DROS: ros-navigation/navigation2 `jazzy`, nav2_costmap_2d/src/costmap_2d_ros.cpp,
  Costmap2DROS::init (declare_parameter list) and getParameters (`<plugin>.plugin`, a string);
* InflationLayer: nav2_costmap_2d/plugins/inflation_layer.cpp, InflationLayer::onInitialize;
* SemanticSegmentationLayer: ros-navigation/semantic_segmentation_layer `jazzy` (d1914ba),
  src/semantic_segmentation_layer.cpp, SemanticSegmentationLayer::onInitialize.
rclcpp refuses an override whose type differs from the declared default's (an `int` declared
parameter given 4.0), so the types are what makes the file loadable, not only its syntax.
The semantic layer's settings are also read into the layer's port, which test_node_nav2.py runs on
the node's topics."""
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

T = Parameter.Type
CONFIG = Path(__file__).resolve().parents[2] / "config" / "nav2_semantic_costmap.yaml"
COSTMAP = {  # Costmap2DROS::init, with the type of each declared default
    "always_send_full_costmap": T.BOOL, "map_vis_z": T.DOUBLE, "footprint_padding": T.DOUBLE,
    "footprint": T.STRING, "global_frame": T.STRING, "height": T.INTEGER, "width": T.INTEGER,
    "lethal_cost_threshold": T.INTEGER, "observation_sources": T.STRING, "origin_x": T.DOUBLE,
    "origin_y": T.DOUBLE, "plugins": T.STRING_ARRAY, "filters": T.STRING_ARRAY, "publish_frequency": T.DOUBLE,
    "resolution": T.DOUBLE, "robot_base_frame": T.STRING, "robot_radius": T.DOUBLE, "rolling_window": T.BOOL,
    "track_unknown_space": T.BOOL, "transform_tolerance": T.DOUBLE, "initial_transform_timeout": T.DOUBLE,
    "trinary_costmap": T.BOOL, "unknown_cost_value": T.INTEGER, "update_frequency": T.DOUBLE,
    "use_maximum": T.BOOL, "map_topic": T.STRING}
INFLATION = {"plugin": T.STRING, "enabled": T.BOOL, "inflation_radius": T.DOUBLE, "cost_scaling_factor": T.DOUBLE,
             "inflate_unknown": T.BOOL, "inflate_around_unknown": T.BOOL}
SEMANTIC = {"plugin": T.STRING, "enabled": T.BOOL, "combination_method": T.INTEGER,
            "observation_sources": T.STRING, "publish_debug_topics": T.BOOL, "use_approximate_time_sync": T.BOOL,
            "sensor_data_depth": T.INTEGER}
SEMANTIC_SOURCE = {"segmentation_topic": T.STRING, "confidence_topic": T.STRING, "labels_topic": T.STRING,
                   "pointcloud_topic": T.STRING, "observation_persistence": T.DOUBLE,
                   "expected_update_rate": T.DOUBLE, "class_types": T.STRING_ARRAY,
                   "max_obstacle_distance": T.DOUBLE, "min_obstacle_distance": T.DOUBLE,
                   "tile_map_decay_time": T.DOUBLE, "visualize_tile_map": T.BOOL, "use_cost_selection": T.BOOL}
SEMANTIC_CLASS_TYPE = {"classes": T.STRING_ARRAY, "base_cost": T.INTEGER, "max_cost": T.INTEGER,
                       "mark_confidence": T.INTEGER, "samples_to_max_cost": T.INTEGER, "dominant_priority": T.BOOL}
PLUGIN_TYPES = {"semantic_segmentation_layer::SemanticSegmentationLayer": "semantic",
                "nav2_costmap_2d::InflationLayer": "inflation"}


def load_costmap_parameters(path: Path = CONFIG) -> dict[str, Parameter]:
    """The parameters a node /local_costmap/local_costmap gets from the file (rcl's parser)."""
    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(path)], context=context)
    try:
        node = Node("local_costmap", namespace="local_costmap", context=context,
                    automatically_declare_parameters_from_overrides=True)
        params = {name: p for name, p in node.get_parameters_by_prefix("").items()
                  if name not in ("use_sim_time", "start_type_description_service")}  # every rclpy node has them
        node.destroy_node()
        return params
    finally:
        rclpy.try_shutdown(context=context)


def expected_declarations(params: dict[str, Parameter]) -> dict[str, Parameter.Type]:
    """name -> declared type of everything the costmap and the plugins it names would declare."""
    declared = dict(COSTMAP)
    for plugin in params["plugins"].value:
        kind = PLUGIN_TYPES[params[f"{plugin}.plugin"].value]
        table = INFLATION if kind == "inflation" else SEMANTIC
        declared.update({f"{plugin}.{k}": t for k, t in table.items()})
        if kind == "semantic":
            for source in params[f"{plugin}.observation_sources"].value.split():
                declared.update({f"{plugin}.{source}.{k}": t for k, t in SEMANTIC_SOURCE.items()})
                for class_type in params[f"{plugin}.{source}.class_types"].value:
                    declared.update({f"{plugin}.{source}.{class_type}.{k}": t for k, t in SEMANTIC_CLASS_TYPE.items()})
    return declared


def test_every_key_is_declared_by_what_reads_it_with_its_type():
    params = load_costmap_parameters()
    declared = expected_declarations(params)
    undeclared = sorted(set(params) - set(declared))
    assert not undeclared, f"keys nobody declares (typos?): {undeclared}"
    wrong = {name: (p.type_, declared[name]) for name, p in params.items() if p.type_ != declared[name]}
    assert not wrong, f"types rclcpp would refuse: {wrong}"


def test_every_plugin_named_is_declared_and_the_layer_reads_the_nodes_aligned_topics():
    params = load_costmap_parameters()
    assert params["plugins"].value == ["semantic_segmentation_layer", "inflation_layer"]
    assert all(f"{p}.plugin" in params for p in params["plugins"].value)
    source = "semantic_segmentation_layer.rns"
    assert {k: params[f"{source}.{k}"].value for k in ("segmentation_topic", "confidence_topic", "labels_topic",
                                                       "pointcloud_topic")} == {
        "segmentation_topic": "/rns/aligned/labels", "confidence_topic": "/rns/aligned/confidence",
        "labels_topic": "/rns/label_info", "pointcloud_topic": "/rns/aligned/points"}
    # set on purpose, with the reason in a comment (the layer's defaults are true and 10)
    assert params["semantic_segmentation_layer.use_approximate_time_sync"].value is False
    assert params["semantic_segmentation_layer.sensor_data_depth"].value == 10
    for class_type in params[f"{source}.class_types"].value:  # onInitialize skips a type without classes
        assert params[f"{source}.{class_type}.classes"].value
        assert 0 <= params[f"{source}.{class_type}.max_cost"].value <= 254


def test_a_typo_or_a_wrong_type_is_found(tmp_path):
    """The check above can fail: a misspelt key and a float width are both reported."""
    broken = CONFIG.read_text().replace("tile_map_decay_time:", "tile_map_decay_tme:").replace(
        "width: 4 ", "width: 4.0 ")
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    params = load_costmap_parameters(path)
    declared = expected_declarations(params)
    assert "semantic_segmentation_layer.rns.tile_map_decay_tme" in set(params) - set(declared)
    assert params["width"].type_ == T.DOUBLE != declared["width"]
