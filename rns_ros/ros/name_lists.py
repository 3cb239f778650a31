"""Parameters and launch arguments that hold a list of names (`classes`, `cameras`,
`camera_topics`): the forms users type, read the same way by the node and the launch file.

    parse_names("front, rear")          # ('front', 'rear')
    parse_names("[front, rear]")        # ('front', 'rear'): the ROS list syntax, as on a command line
    parse_names("['front', 'rear']")    # ('front', 'rear')
    parse_names(["front", " rear "])    # ('front', 'rear'): a list parameter

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
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"{what}: cannot read {value!r} as a list ({exc.problem}); write "
                             "'a, b' or '[a, b]'") from None
        if value is None:
            value = []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ValueError(f"{what} must be a comma-separated string or a list of strings, got {value!r}")
    return tuple(name.strip() for name in items if name.strip())
