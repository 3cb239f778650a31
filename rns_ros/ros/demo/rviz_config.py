"""The RViz view of a launched `rns` node: the package's rviz/rns.rviz (written for the default
launch: node `rns`, no namespace, camera on /camera/image_raw) with every topic moved to where
the launch put it, so the view follows `namespace:=` and `image_topic:=` without hand editing.

    rviz_config(Path("rviz/rns.rviz").read_text(), namespace="robot1", image_topic="/cam/rgb")

Only the displays' topics and the clouds' on/off change: the node's own topics (`/rns/<name>` in
the template) become `/<namespace>/<node>/<name>`; the camera display's topic becomes the camera
topic the node subscribes to (a relative name is resolved in the namespace, as ROS resolves the
remapping); PointCloud2 displays are shown only with `show_cloud` (when the launch turns depth on).
Plain Python and YAML, no ROS: the launch file calls `write_rviz_config` at launch time.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

TEMPLATE_NODE = "rns"  # the template's topics are those of this node name without a namespace
TEMPLATE_CAMERA_TOPIC = "/camera/image_raw"  # the template's input display
HEADER = ("# Generated at launch from the rns_ros package's rviz/rns.rviz for node {node}: "
          "topics follow the launch's namespace and image_topic.\n")


def _clean(namespace: str) -> str:
    return "/".join(part for part in namespace.split("/") if part)


def resolve_topic(name: str, namespace: str = "") -> str:
    """The absolute topic a (possibly relative) `name` means inside `namespace`."""
    if name.startswith("/"):
        return "/" + _clean(name)
    return "/" + "/".join(p for p in (_clean(namespace), _clean(name)) if p)


def rviz_config(template: str, *, namespace: str = "", image_topic: str = TEMPLATE_CAMERA_TOPIC,
                node_name: str = TEMPLATE_NODE, show_cloud: bool = False) -> str:
    """The RViz config text of `template` with its topics moved to the launched node's."""
    doc = yaml.safe_load(template)
    node_prefix = f"/{TEMPLATE_NODE}/"
    for display in doc["Visualization Manager"]["Displays"]:
        if display.get("Class") == "rviz_default_plugins/PointCloud2":
            display["Enabled"] = display["Value"] = bool(show_cloud)
        topic = display.get("Topic", {})
        value = topic.get("Value", "")
        if value == TEMPLATE_CAMERA_TOPIC:
            topic["Value"] = resolve_topic(image_topic, namespace)
        elif value.startswith(node_prefix):
            topic["Value"] = resolve_topic(f"{node_name}/{value[len(node_prefix):]}", namespace)
    return HEADER.format(node=resolve_topic(node_name, namespace)) + yaml.safe_dump(doc, sort_keys=False)


def write_rviz_config(template_path: str | Path, **kwargs) -> str:
    """Write `rviz_config(...)` of the template file to a new temporary .rviz file; its path."""
    text = rviz_config(Path(template_path).read_text(), **kwargs)
    with tempfile.NamedTemporaryFile("w", prefix="rns_", suffix=".rviz", delete=False) as out:
        out.write(text)
    return out.name
