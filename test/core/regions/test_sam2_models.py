"""sam2_models: names, checkpoint errors (fast, before any build), the TEST-ONLY tiny model."""
from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rns_ros.core.regions import sam2_models
from rns_ros.core.regions.sam2_models import SAM2_PRESETS, build_sam2_model, check_checkpoint, resolve_model

REPO = Path(__file__).resolve().parents[2]


def test_engine_imports_no_sam2_and_a_missing_checkpoint_is_reported_before_importing_it(tmp_path):
    """In a fresh interpreter: importing the modules (and making a config) loads neither sam2 nor
    Hydra, and the missing-checkpoint error comes before sam2 is imported."""
    code = ("import sys, rns_ros.core.regions.sam2_models, rns_ros.core.regions.proposals\n"
            "from rns_ros.core.regions.proposals import ProposalConfig\n"
            "ProposalConfig()\n"
            "bad = [m for m in ('sam2', 'hydra', 'rclpy') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "from rns_ros.core.regions.sam2_models import build_sam2_model\n"
            "try:\n"
            f"    build_sam2_model('configs/sam2.1/sam2.1_hiera_t.yaml', {str(tmp_path / 'x.pt')!r})\n"
            "except FileNotFoundError as e:\n"
            "    assert 'sam2.1_hiera_tiny.pt' in str(e), e\n"
            "else:\n    raise SystemExit('no error')\n"
            "assert 'sam2' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_presets_and_config_names_resolve_to_package_configs():
    root = sam2_models._sam2_package_dir()
    for name, preset in SAM2_PRESETS.items():
        assert resolve_model(name) == preset
        assert (root / preset.config_name).is_file(), name
    by_name = resolve_model("configs/sam2.1/sam2.1_hiera_l.yaml")
    assert by_name.checkpoint_file == "sam2.1_hiera_large.pt"
    assert "configs/sam2.1/sam2.1_hiera_t.yaml" in sam2_models.available_config_names()


def test_unknown_name_is_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match="sam2.1-hiera-large") as err:
        resolve_model("sam3-huge")
    assert "configs/sam2.1/sam2.1_hiera_l.yaml" in str(err.value)


def test_a_config_file_path_is_refused_and_the_error_says_names_are_not_paths(tmp_path):
    own = tmp_path / "my_sam.yaml"
    own.write_text("model: {}\n")
    with pytest.raises(ValueError, match="config NAME inside the sam2 package"):
        resolve_model(str(own))


def test_a_model_without_checkpoint_is_refused_naming_the_setting_per_entry_point():
    from rns_ros.core.advice import CLI_SPELLING, explain

    with pytest.raises(ValueError) as err:
        check_checkpoint("sam2.1-hiera-large", None)
    assert "pass checkpoint='/path/to/sam2.1_hiera_large.pt'" in str(err.value)  # the API's argument
    assert "pass --sam-checkpoint /path/to/sam2.1_hiera_large.pt," in explain(err.value, CLI_SPELLING)


def test_missing_checkpoint_file_fails_fast_naming_the_file_and_where_to_get_it(tmp_path):
    missing = tmp_path / "nowhere" / "sam2.1_hiera_large.pt"
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as err:
        build_sam2_model("sam2.1-hiera-large", checkpoint=missing)
    assert time.perf_counter() - start < 0.5
    message = str(err.value)
    assert str(missing) in message
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt" in message


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory"):
        build_sam2_model("sam2.1-hiera-tiny", checkpoint=tmp_path)


def test_real_model_without_checkpoint_asks_for_one_unless_random_weights():
    with pytest.raises(ValueError, match="sam2.1_hiera_small.pt"):
        build_sam2_model("sam2.1-hiera-small")
    assert sam2_models.check_checkpoint("sam2.1-hiera-small", None, random_weights=True) is None


def test_test_tiny_takes_no_checkpoint(tmp_path):
    fake = tmp_path / "w.pt"
    fake.write_bytes(b"")
    with pytest.raises(ValueError, match="TEST-ONLY"):
        build_sam2_model("test-tiny", checkpoint=fake)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_cuda_device_without_cuda_is_refused():
    with pytest.raises(ValueError, match="CUDA is not available"):
        build_sam2_model("test-tiny", device="cuda")


@pytest.fixture(scope="module")
def tiny():
    return build_sam2_model("test-tiny")


def test_test_tiny_builds_small_in_eval_mode_deterministically_without_moving_the_seed(tiny):
    assert not tiny.training
    assert tiny.image_size == 256
    assert sum(p.numel() for p in tiny.image_encoder.trunk.parameters()) < 2_000_000
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = build_sam2_model("test-tiny")
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    for (name, a), (_, b) in zip(tiny.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_image_predictor_feature_sizes_follow_the_input_size(tiny):
    predictor = sam2_models.build_image_predictor(tiny)
    assert predictor._bb_feat_sizes == [(64, 64), (32, 32), (16, 16)]


def test_checkpoint_weights_are_loaded_and_mismatches_are_explained(tiny, tmp_path):
    state = {k: v.clone() + 1.0 if v.is_floating_point() else v.clone()
             for k, v in tiny.state_dict().items()}
    path = tmp_path / "ckpt.pt"
    torch.save({"model": state}, path)
    fresh = copy.deepcopy(tiny)
    sam2_models._load_weights(fresh, path, "configs/sam2.1/sam2.1_hiera_t.yaml")
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, state[name]), name

    torch.save({"model": {"not.a.sam2.key": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="does not fit config"):
        sam2_models._load_weights(fresh, path, "configs/sam2.1/sam2.1_hiera_t.yaml")

    torch.save({"weights": {}}, path)
    with pytest.raises(ValueError, match="not a SAM 2 checkpoint"):
        sam2_models._load_weights(fresh, path, "configs/sam2.1/sam2.1_hiera_t.yaml")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_test_tiny_builds_on_cuda():
    model = build_sam2_model("test-tiny", device="cuda")
    assert next(model.parameters()).device.type == "cuda"
