"""Error texts that name the fix the way the caller sets things.

The engine has three entry points: the Python API (arguments), the `rns-segment` CLI (flags) and
the ROS node (parameters). An error whose fix is "set this" is an `AdvisedError`: its template
names each setting as a `{setting=value}` token, and each entry point spells the tokens its own
way (`explain(exc, spelling)`). Setting names are the node's parameter names (rns_ros/ros/params.py),
so the node spells `{checkpoint=FILE}` as `-p checkpoint:=FILE`. `str(exc)` is the API's text.
"""
from __future__ import annotations

import re
from typing import Mapping

_TOKEN = re.compile(r"\{([a-z_.]+)=([^{}]*)\}")

# setting -> how the entry point sets it ({value} is the suggested value)
API_SPELLING: dict[str, str] = {
    "backbone": "build_backbone('{value}', ...)",
    "checkpoint": "build_backbone(..., checkpoint='{value}')",
    "regions.checkpoint": "checkpoint='{value}' (ProposalConfig, PromptMasker or build_sam2_model)",
    "device": "build_backbone(..., device='{value}')",
    "precision": "build_backbone(..., precision='{value}')",
    "runtime": "build_backbone(..., runtime='{value}')",
    "onnx_model": "build_backbone(..., onnx_model='{value}')",
}
CLI_SPELLING: dict[str, str] = {
    "backbone": "--backbone {value}",
    "checkpoint": "--checkpoint {value}",
    "regions.checkpoint": "--sam-checkpoint {value}",
    "device": "--device {value}",
    "precision": "--precision {value}",
    "runtime": "--runtime {value}",
    "onnx_model": "--onnx-model {value}",
}


def spell(template: str, spelling: Mapping[str, str]) -> str:
    """`template` with every `{setting=value}` token written as `spelling` sets it."""
    return _TOKEN.sub(lambda m: spelling[m[1]].format(value=m[2]), template)


class AdvisedError(Exception):
    """An error whose message names settings to change; `explain(spelling)` for other entry points."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(spell(template, API_SPELLING))

    def explain(self, spelling: Mapping[str, str]) -> str:
        return spell(self.template, spelling)


class MissingWeightsError(AdvisedError, ValueError):
    """A model needs a weights file that no setting names."""


def explain(exc: BaseException, spelling: Mapping[str, str]) -> str:
    """The message of `exc` for an entry point: re-spelled when it is an AdvisedError."""
    return exc.explain(spelling) if isinstance(exc, AdvisedError) else str(exc)
