"""The curated public API of rns_ros.core: lazy, complete, and cheap to import."""
import subprocess
import sys
from pathlib import Path

import pytest

import rns_ros.core as core

ROOT = Path(__file__).resolve().parents[2]
API = ["SupportMemory", "TestTimeAdapter", "AdapterConfig", "Exemplar", "encode_exemplar", "Segmenter",
       "Segmentation", "build_backbone", "DenseFeatures", "RegionProposer", "ProposalConfig",
       "PromptMasker", "save_memory", "load_memory", "merge_memory"]


def test_every_public_name_resolves():
    assert set(API) <= set(core.__all__)
    for name in core.__all__:
        obj = getattr(core, name)
        assert getattr(obj, "__name__", name) == name or name.isupper()
    assert set(API) <= set(dir(core))
    with pytest.raises(AttributeError):
        core.NoSuchThing  # noqa: B018


def test_import_is_cheap_and_ros_free():
    code = ("import sys, rns_ros.core; heavy = [m for m in ('torch', 'open_clip', 'sam2', 'faiss', 'rclpy') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
