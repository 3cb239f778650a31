"""The parameter table: defaults from the dataclasses, validation, the shipped YAML."""
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.regions.proposals import ProposalConfig
from rns_ros.ros import params
from rns_ros.ros.depth.projection import DepthConfig
from rns_ros.ros.engine import EngineConfig
from rns_ros.ros.fleet.config import FleetConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"node": params.NodeConfig, "depth": DepthConfig, "fleet": FleetConfig, "engine": EngineConfig,
           "adapter": AdapterConfig, "proposals": ProposalConfig}


def test_every_parameter_maps_to_a_real_field_and_takes_its_default_from_it():
    for spec in params.PARAMETERS:
        cls = CONFIGS[spec.target]
        assert spec.field in {f.name for f in fields(cls)}, spec.name
        default = getattr(cls(), spec.field)
        expected = "" if default is None else (list(default) if isinstance(default, tuple) else default)
        assert params.default_value(spec) == expected, spec.name
        assert spec.description.strip(), spec.name


def test_defaults_build_the_default_configs():
    node, engine = params.build_configs({s.name: params.default_value(s) for s in params.PARAMETERS})
    assert node == params.NodeConfig() and engine == EngineConfig()


def test_fleet_parameters_reach_their_fields_and_bad_ones_are_refused():
    node, _ = params.build_configs({"fleet.enabled": True, "fleet.accept_from": "/a/rns@h1, /b/rns@h2",
                                    "fleet.topic": "/site1/memory", "fleet.max_message_mb": 2})
    assert node.fleet == FleetConfig(enabled=True, accept_from=("/a/rns@h1", "/b/rns@h2"), topic="/site1/memory",
                                     max_message_mb=2.0)
    assert params.build_configs({"fleet.accept_from": ["/a/rns@h1"]})[0].fleet.accept_from == ("/a/rns@h1",)
    for bad, why in (({"fleet.topic": "rns_fleet/memory"}, "absolute"), ({"fleet.topic": "/a b"}, "absolute"),
                     ({"fleet.accept_from": "x, x"}, "twice"), ({"fleet.robot_id": " me"}, "spaces"),
                     ({"fleet.snapshot_period_s": 0.0}, "snapshot_period_s")):
        with pytest.raises(ValueError, match=why):
            params.build_configs(bad)


def test_values_reach_their_fields():
    node, engine = params.build_configs({"classes": " car, person ,, tree", "adapter.steps": 25, "overlay_alpha": 1,
                                         "device": "cpu", "regions.checkpoint": "", "mode": "patch"})
    assert node.classes == ("car", "person", "tree") and node.overlay_alpha == 1.0
    assert engine.adapter.steps == 25 and engine.device == "cpu" and engine.proposals.checkpoint is None
    assert params.build_configs({"profile": "cpu-fast"})[1].profile == "cpu-fast"
    assert params.build_configs({"classes": ["a", " b "]})[0].classes == ("a", "b")
    assert params.build_configs({"adapter.cpu_threads": 2})[1].adapter.cpu_threads == 2  # issue 25, item 10
    node, _ = params.build_configs({"cameras": "front, left_2", "image_transport": "compressed",
                                    "min_confidence": 0.4, "confidence_encoding": "mono8", "camera_batching": "on"})
    assert node.cameras == ("front", "left_2") and node.image_transport == "compressed"
    assert (node.min_confidence, node.confidence_encoding, node.camera_batching) == (0.4, "mono8", "on")
    assert params.build_configs({"cameras": ["a", "b"]})[0].cameras == ("a", "b")


def test_palette_values_become_the_palette_of_every_output():
    node, _ = params.build_configs({"palette": ["#FF8800", "00ff00"], "overlay_legend": False,
                                    "overlay_contours": True, "overlay_alpha": 0.25})
    assert node.palette == ("#FF8800", "00ff00") and node.colors().color(1) == (255, 136, 0)
    assert node.colors().color(3) == (255, 136, 0)  # a short list is reused from its start
    style = node.overlay_style()
    assert style.legend is None and style.contours and style.alpha == 0.25
    assert params.build_configs({"palette": "#010203, #040506"})[0].colors().color(2) == (4, 5, 6)
    assert params.build_configs({"palette": "okabe-ito"})[0].colors().name == "okabe-ito"
    assert params.NodeConfig().colors().name == "golden" and params.NodeConfig().overlay_style().legend is not None
    assert params.descriptor(params.SPECS["palette"]).dynamic_typing  # a name or a list


@pytest.mark.parametrize("values, match", [
    ({"adapter.steps": 0}, "adapter.steps"),
    ({"adapter.tau": -1.0}, "adapter.tau"),
    ({"adapter.solver": "sgd"}, "adapter.solver"),
    ({"device": "gpu0"}, "device"),
    ({"mode": "pixels"}, "mode"),
    ({"profile": "cpu-slow"}, "profile"),
    ({"overlay_alpha": 1.5}, "overlay_alpha"),
    ({"overlay_alpha": "half"}, "overlay_alpha"),
    ({"image_qos": "fast"}, "image_qos"),
    ({"classes": "a, b, a"}, "unique"),
    ({"classes": "mug, Mug"}, "listed twice"),  # the teaching services' rule (issue 25)
    ({"classes": ["x" * 129]}, "longer than 128"),
    ({"teach_class": "y" * 129}, "teach_class .* longer than 128"),
    ({"classes": [1, 2]}, "classes"),
    ({"autostart": 1}, "autostart"),
    ({"no_such_parameter": 1}, "unknown parameter"),
    ({"min_confidence": 1.5}, "min_confidence"),
    ({"confidence_encoding": "16UC1"}, "confidence_encoding"),
    ({"image_transport": "theora"}, "image_transport"),
    ({"camera_batching": "always"}, "camera_batching"),
    ({"cameras": "front, front"}, "unique"),
    ({"cameras": "front, 2nd"}, "topic names"),
    ({"cameras": ["front/left"]}, "topic names"),
    ({"cameras": 3}, "cameras"),
    ({"regions.model": "sam9"}, "SAM 2 model"),
    ({"overlay_legend": "yes"}, "overlay_legend"),
    ({"palette": ["#ff0000", "#00ff0"]}, r"parameter 'palette': palette entry 2 \(class 2\) '#00ff0' is not a hex "
                                         r"colour: write '#RRGGBB'.*-p palette:="),
    ({"palette": "rainbow"}, "parameter 'palette': palette 'rainbow' is neither a built-in palette"),
    ({"palette": []}, "parameter 'palette': palette is an empty list"),
    ({"palette": 3}, "parameter 'palette'"),
])
def test_bad_values_are_refused_with_the_parameter_named(values, match):
    with pytest.raises(ValueError, match=match):
        params.build_configs(values)


def test_error_texts_can_name_every_setting_as_a_node_parameter():
    from rns_ros.core.advice import API_SPELLING, MissingWeightsError, explain

    assert set(API_SPELLING) <= set(params.ERROR_SPELLING)  # every setting the engine may name
    err = MissingWeightsError("pass {regions.checkpoint=/sam.pt} or {checkpoint=/w.bin}")
    assert explain(err, params.ERROR_SPELLING) == "pass -p regions.checkpoint:=/sam.pt or -p checkpoint:=/w.bin"


def test_unknown_parameters_ignore_what_ros_owns():
    assert params.unknown_parameters(["use_sim_time", "qos_overrides./image.subscription.depth",
                                      "classes", "typo_classes"]) == ["typo_classes"]


def _flatten(d, prefix=""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_shipped_yaml_holds_only_known_valid_parameters():
    doc = yaml.safe_load((ROOT / "config" / "rns.yaml").read_text())
    (section,) = doc.values()
    values = dict(_flatten(section["ros__parameters"]))
    assert values, "config/rns.yaml sets no parameter"
    params.build_configs(values)  # raises on unknown keys or bad values
    # The commented reference lines must name real parameters with their real defaults; a commented
    # key without a value (`# depth:`) opens a group for the indented lines below it.
    group = ""
    for line in (ROOT / "config" / "rns.yaml").read_text().splitlines():
        opens = re.match(r"^(\s*)#\s*([a-z_]+):\s*(#.*)?$", line)
        if opens:
            group = f"{opens.group(2)}."
            continue
        m = re.match(r"^(\s*)#(\s*)([a-z_]+):\s+([^\s#]+)", line)
        if m:
            indented, key, value = len(m.group(2)) > 1, m.group(3), m.group(4)
            name = f"{group}{key}" if indented else key
            assert name in params.SPECS, f"config/rns.yaml documents unknown parameter {key!r}"
            assert yaml.safe_load(value) == params.default_value(params.SPECS[name]), line


def test_every_parameter_is_documented():
    text = (ROOT / "docs" / "ros.md").read_text()
    missing = [s.name for s in params.PARAMETERS if f"`{s.name}`" not in text]
    assert not missing, f"docs/ros.md does not document {missing}"
