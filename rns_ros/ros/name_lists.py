"""Parameters and launch arguments that hold a list of names (`classes`, `cameras`,
`camera_topics`): the forms users type, read the same way by the node and the launch file.

    parse_names("front, rear")          # ('front', 'rear')
    parse_names("[front, rear]")        # ('front', 'rear'): the ROS list syntax, as on a command line
    parse_names("['front', 'rear']")    # ('front', 'rear')
    parse_names(["front", " rear "])    # ('front', 'rear'): a list parameter
    format_names(["mug, red", "plate"])  # "['mug, red', plate]": read back as these two names

Items are stripped and blank ones dropped. Light on purpose (no torch, no rclpy): the launch file
imports it.
"""
from __future__ import annotations

from typing import Any

import yaml


def parse_names(value: Any, what: str = "classes") -> tuple[str, ...]:
    """The names in a comma-separated string, a bracketed list string or a list of strings;
    ValueError naming `what` for anything else."""
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        text = value
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"{what}: cannot read {value!r} as a list ({exc.problem}); write "
                             "'a, b' or '[a, b]'") from None
        if value is None:
            value = []
        scalars = [v for v in value if isinstance(v, (bool, int, float))] if isinstance(value, list) else []
        if scalars:
            raise ValueError(f"{what}: YAML reads {scalars!r} in {text!r} as numbers or booleans, not names; "
                             "quote such names, e.g. ['yes', '123'], or write them comma-separated")
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ValueError(f"{what} must be a comma-separated string or a list of strings, got {value!r}")
    return tuple(name.strip() for name in items if name.strip())


def format_names(names) -> str:
    """`names` in the ROS list syntax, each quoted where YAML needs it ("['mug, red', plate]"; '' for
    none), which `parse_names` reads back as exactly these names (a comma-separated string would
    split a name holding a comma). The launch file hands the node its lists in this form."""
    names = list(names)
    if not names:
        return ""
    return yaml.safe_dump(names, default_flow_style=True, allow_unicode=True, width=float("inf")).strip()
