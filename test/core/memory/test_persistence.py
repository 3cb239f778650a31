"""save_memory / load_memory: round trip, interrupted saves, corrupt files, re-encoding."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _support_fakes import FakeBackbone, random_image
from rns_ros.core.memory import persistence
from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar
from rns_ros.core.memory.persistence import CorruptFileError, load_memory, save_memory
from rns_ros.core.memory.support import SupportMemory

D = 16


def build_memory(backbone: FakeBackbone, seed: int = 0) -> SupportMemory:
    """Classes with/without text and prompts, exemplars with/without raw, gaps in the ids."""
    rng = np.random.default_rng(seed)
    memory = SupportMemory(backbone.dim, backbone_identity=backbone.identity)
    text = backbone.encode_text(["cat", "a photo of a dog"])
    cat = memory.add_class("cat", text[0])
    gone = memory.add_class("gone")
    dog = memory.add_class("dog", text[1], prompt="a photo of a dog")
    anon = memory.add_class(None)
    for k in range(3):
        image = random_image(rng, 10 + k, 13)
        labels = np.zeros(image.shape[:2], np.int64)
        labels[: 5 + k, :6] = cat
        labels[6:, 7:] = [dog, anon, gone][k]
        ex = Exemplar(image, labels)
        memory.add_image_features(*encode_exemplar(backbone, ex), exemplar=ex)
    memory.add_image_features(torch.randn(2, backbone.dim, generator=torch.Generator().manual_seed(seed)),
                              [dog, anon])  # features only, no raw exemplar
    memory.remove_exemplar(1)
    memory.remove_class(gone)
    return memory


def saved_memory(tmp_path: Path) -> tuple[FakeBackbone, SupportMemory, Path]:
    """A fake backbone, a memory built with it, and the directory it was just saved to."""
    backbone = FakeBackbone(dim=D)
    memory = build_memory(backbone)
    directory = tmp_path / "mem"
    save_memory(memory, directory)
    return backbone, memory, directory


def state(memory: SupportMemory):
    """Comparable description of everything a memory holds."""
    text, has = memory.text_matrix()
    bank, classes = memory.bank()
    raws = []
    for eid in memory.exemplar_ids:
        ex = memory.exemplar(eid)
        raws.append(None if ex is None else (ex.image.tobytes(), ex.labels.tobytes(), ex.image.shape))
    return dict(ids=memory.class_ids, records=memory.classes, next=(memory.next_class_id,
                memory.next_exemplar_id), exemplars=memory.exemplar_ids, identity=memory.backbone_identity,
                text=text.numpy(), has=has.tolist(), bank=bank.numpy(), classes=classes.tolist(), raws=raws)


def same(a: dict, b: dict) -> bool:
    """Equal states, features bit for bit (unit-norm rows are stored as given, so loading does not
    normalise them a second time)."""
    floats = ("text", "bank")
    return ({k: v for k, v in a.items() if k not in floats} == {k: v for k, v in b.items() if k not in floats}
            and all(a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in floats))


def test_round_trip_keeps_ids_features_and_raw_exemplars(tmp_path):
    backbone = FakeBackbone(dim=D)
    memory = build_memory(backbone)
    save_memory(memory, tmp_path / "mem")
    loaded, report = load_memory(tmp_path / "mem")
    assert report.ok and not report.reencoded and report.format_version == persistence.FORMAT_VERSION
    assert same(state(loaded), state(memory))
    queries = torch.nn.functional.normalize(torch.randn(7, D), dim=1)
    for a, b in zip(loaded.search(queries, 3), memory.search(queries, 3)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert loaded.add_class("new") == memory.add_class("new") == 5  # removed id 2 never comes back
    assert loaded.add_image_features(queries[:1], [1]) == memory.add_image_features(queries[:1], [1]) == 5


def test_data_files_are_written_once_and_unreferenced_ones_collected(tmp_path):
    backbone, memory, directory = saved_memory(tmp_path)
    first = {p.name: p.stat().st_mtime_ns for p in (directory / "data").iterdir()}
    save_memory(memory, directory)
    assert {p.name: p.stat().st_mtime_ns for p in (directory / "data").iterdir()} == first
    memory.remove_exemplar(memory.exemplar_ids[0])
    save_memory(memory, directory)  # the previous save's files stay (fallback)
    memory.remove_exemplar(memory.exemplar_ids[0])
    save_memory(memory, directory)
    referenced = persistence._referenced(directory / "memory.json") | \
        persistence._referenced(directory / "memory.prev.json")
    assert {p.name for p in (directory / "data").iterdir()} == referenced
    assert not [p for p in directory.rglob(".*tmp-*")]


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_interrupted_save_at_any_point_leaves_a_loadable_state(tmp_path, monkeypatch, target):
    backbone = FakeBackbone(dim=D)
    old = build_memory(backbone, seed=0)
    new = build_memory(backbone, seed=1)
    new.add_class("extra", backbone.encode_text(["extra"])[0])
    new.add_image_features(torch.randn(1, D), [new.class_id("extra")])
    directory = tmp_path / "mem"
    real = getattr(os, target)
    calls = {"n": 0}
    save_memory(old, directory)
    old_state, new_state = state(old), state(new)
    fail_at = 0
    while True:  # crash at the 1st, 2nd, ... call until a save gets through untouched
        fail_at += 1
        calls["n"] = 0

        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError(f"simulated crash at {target} call {fail_at}")
            return real(*args, **kwargs)

        monkeypatch.setattr(os, target, failing)
        try:
            save_memory(new, directory)
            crashed = False
        except OSError as exc:
            assert "simulated crash" in str(exc)
            crashed = True
        monkeypatch.setattr(os, target, real)
        loaded, report = load_memory(directory)
        assert report.ok, report
        assert same(state(loaded), old_state) or same(state(loaded), new_state), fail_at
        if not crashed:
            assert same(state(loaded), new_state) and fail_at > 3
            break
        save_memory(old, directory)  # back to the old state for the next crash point


def test_killed_save_process_leaves_a_loadable_state(tmp_path):
    directory = tmp_path / "mem"
    child = textwrap.dedent(f"""
        import sys, torch
        from rns_ros.core.memory.persistence import save_memory
        from rns_ros.core.memory.support import SupportMemory
        memory = SupportMemory({D}, backbone_identity="fake-a")
        gen = torch.Generator().manual_seed(0)
        i = 0
        while True:
            cid = memory.add_class(f"c{{i}}", torch.randn({D}, generator=gen))
            memory.add_image_features(torch.randn(50, {D}, generator=gen), [cid] * 50)
            save_memory(memory, {str(directory)!r})
            print(i, flush=True)
            i += 1
        """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2],
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    try:
        for _ in range(3):  # a few complete saves, then kill it somewhere inside the next ones
            assert proc.stdout.readline(), "child died"
        time.sleep(0.013)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    loaded, report = load_memory(directory)
    assert report.ok, report
    n = len(loaded.class_ids)
    assert n >= 3
    assert [r.name for r in loaded.classes] == [f"c{i}" for i in range(n)]
    assert loaded.num_features == 50 * n


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def manifest_of(directory: Path) -> dict:
    return json.loads((directory / "memory.json").read_text())


def test_corrupt_manifest_is_set_aside_and_previous_save_loaded(tmp_path):
    backbone = FakeBackbone(dim=D)
    directory = tmp_path / "mem"
    first = build_memory(backbone)
    save_memory(first, directory)
    second = build_memory(backbone)
    second.add_class("later")
    save_memory(second, directory)
    (directory / "memory.json").write_text('{"format": "rns_ros.support_memory", "format_vers')
    loaded, report = load_memory(directory)
    assert report.used_previous_save and not report.ok
    assert same(state(loaded), state(first))
    aside = Path(report.set_aside[0].moved_to)
    assert aside.exists() and aside.read_text().endswith("format_vers")  # kept, not deleted
    (directory / "memory.prev.json").write_text("garbage")
    with pytest.raises(CorruptFileError, match="no readable manifest"):
        load_memory(directory)


def test_corrupt_data_files_are_set_aside_and_the_rest_loaded(tmp_path):
    backbone, memory, directory = saved_memory(tmp_path)
    entries = {e["id"]: e for e in manifest_of(directory)["exemplars"]}
    with_raw, without_raw = 2, 4
    feats_file = directory / entries[with_raw]["features"]["file"]
    corrupt(feats_file)
    (directory / entries[3]["image"]["file"]).write_bytes(b"")  # truncated image of exemplar 3
    corrupt(directory / manifest_of(directory)["text"]["file"])
    (directory / entries[without_raw]["features"]["file"]).unlink()

    loaded, report = load_memory(directory)  # no backbone: nothing can be recomputed
    assert not report.ok
    assert report.dropped_exemplars == [with_raw, without_raw]
    assert report.exemplars_without_raw == [3]
    assert report.classes_without_text == [1, 3]
    assert loaded.exemplar_ids == [3] and loaded.exemplar(3) is None
    np.testing.assert_allclose(loaded.exemplar_features(3)[0].numpy(),
                               memory.exemplar_features(3)[0].numpy(), atol=1e-6)
    assert loaded.class_ids == memory.class_ids and not loaded.text_matrix()[1].any()
    moved = [Path(s.moved_to) for s in report.set_aside if s.moved_to]
    assert len(moved) == 3 and all(p.exists() and ".corrupt-" in p.name for p in moved)
    assert not feats_file.exists()


def test_damaged_features_recomputed_with_the_same_backbone(tmp_path):
    backbone, memory, directory = saved_memory(tmp_path)
    entries = {e["id"]: e for e in manifest_of(directory)["exemplars"]}
    corrupt(directory / entries[2]["features"]["file"])
    corrupt(directory / manifest_of(directory)["text"]["file"])
    loaded, report = load_memory(directory, backbone=backbone)
    assert not report.reencoded and report.reencoded_exemplars == [2] and report.reencoded_text == [1, 3]
    assert same(state(loaded), state(memory))


def test_identity_change_reencodes_raw_exemplars_and_text(tmp_path):
    old_backbone = FakeBackbone("fake-a", dim=D)
    memory = build_memory(old_backbone)
    save_memory(memory, tmp_path / "mem")
    new_backbone = FakeBackbone("fake-b", dim=8)
    loaded, report = load_memory(tmp_path / "mem", backbone=new_backbone)
    assert report.reencoded and report.stored_identity == "fake-a" and report.identity == "fake-b"
    assert loaded.backbone_identity == "fake-b" and loaded.dim == 8
    assert report.reencoded_exemplars == [2, 3] and report.dropped_exemplars == [4]  # 4 had no raw
    assert loaded.class_ids == memory.class_ids and loaded.exemplar_ids == [2, 3]
    for eid in (2, 3):
        expected, expected_ids = encode_exemplar(new_backbone, memory.exemplar(eid))
        feats, ids = loaded.exemplar_features(eid)
        assert ids == expected_ids
        np.testing.assert_allclose(feats.numpy(), expected.numpy(), atol=1e-6)
    text, has = loaded.text_matrix()
    assert has.tolist() == [True, True, False]
    expected_text = new_backbone.encode_text(["cat", "a photo of a dog"])  # prompt when there is one
    np.testing.assert_allclose(text[:2].numpy(), expected_text.numpy(), atol=1e-6)


def test_origins_and_the_ledger_are_saved_and_a_version_1_memory_still_loads(tmp_path):
    """Format 2 keeps which robot taught each exemplar and the fleet sync's ledger; a directory
    written by format 1 (no such fields) loads as a memory taught here, with an empty ledger."""
    backbone = FakeBackbone(dim=D)
    memory = build_memory(backbone)
    received = memory.add_image_features(torch.randn(1, D), [memory.class_id("cat")], origin="/b/rns@robot-b")
    memory.ledger = {"clock": 7, "removed_exemplars": ["ab" * 32]}
    directory = tmp_path / "mem"
    save_memory(memory, directory)
    loaded, report = load_memory(directory)
    assert report.ok and same(state(loaded), state(memory)) and loaded.ledger == memory.ledger
    assert [loaded.exemplar_origin(e) for e in loaded.exemplar_ids] == \
        [None] * (len(loaded.exemplar_ids) - 1) + ["/b/rns@robot-b"]
    assert loaded.class_record(loaded.class_id("cat")).exemplar_origins[-1] == "/b/rns@robot-b"
    assert received == loaded.exemplar_ids[-1]

    manifest = manifest_of(directory)
    manifest["format_version"] = 1
    del manifest["ledger"]
    for entry in manifest["exemplars"]:
        del entry["origin"]
    (directory / "memory.json").write_text(json.dumps(manifest))
    old, report = load_memory(directory)
    assert report.ok and report.format_version == 1 and old.ledger == {}
    assert [old.exemplar_origin(e) for e in old.exemplar_ids] == [None] * len(old.exemplar_ids)
    assert old.bank()[0].numpy().tobytes() == memory.bank()[0].numpy().tobytes()


def test_identity_mismatch_without_backbone_and_newer_format_are_refused(tmp_path):
    memory = build_memory(FakeBackbone(dim=D))
    directory = tmp_path / "mem"
    save_memory(memory, directory)
    with pytest.raises(ValueError, match="pass backbone"):
        load_memory(directory, expected_identity="openclip-other")
    assert load_memory(directory, expected_identity="fake-a")[1].ok
    manifest = manifest_of(directory)
    manifest["format_version"] = persistence.FORMAT_VERSION + 1
    (directory / "memory.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="newer"):
        load_memory(directory)
    assert (directory / "memory.json").exists()  # a newer file is not corrupt: left in place
    with pytest.raises(FileNotFoundError):
        load_memory(tmp_path / "nothing-here")


def test_real_tiny_backbone_end_to_end(tmp_path):
    """The same path with the `test-tiny` preset: encode, save, load under another identity."""
    backbones = pytest.importorskip("rns_ros.core.backbones")
    first = backbones.build_backbone("test-tiny", seed=0)
    second = backbones.build_backbone("test-tiny", seed=1)
    assert first.identity != second.identity
    rng = np.random.default_rng(9)
    memory = SupportMemory(first.dim, backbone_identity=first.identity)
    car = memory.add_class("car", first.encode_text(["car"])[0])
    road = memory.add_class("road")
    image = random_image(rng, 48, 80)
    labels = np.zeros((48, 80), np.int64)
    labels[:20, 10:50], labels[30:, :] = car, road
    ex = Exemplar(image, labels)
    feats, ids = encode_exemplar(first, ex)
    assert ids == [car, road] and feats.shape == (2, first.dim)
    memory.add_image_features(feats, ids, exemplar=ex)
    save_memory(memory, tmp_path / "mem")
    same_backbone, report = load_memory(tmp_path / "mem", backbone=first)
    assert report.ok and not report.reencoded
    np.testing.assert_allclose(same_backbone.bank()[0].numpy(), feats.numpy(), atol=1e-6)
    loaded, report = load_memory(tmp_path / "mem", backbone=second)
    assert report.reencoded and report.reencoded_exemplars == [1] and report.reencoded_text == [car]
    expected, _ = encode_exemplar(second, ex)
    np.testing.assert_allclose(loaded.bank()[0].numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(loaded.text_feature(car).numpy(), second.encode_text(["car"])[0].numpy(),
                               atol=1e-5)


def test_memory_of_one_family_is_refused_by_another_until_reencoded(tmp_path):
    """A memory made with OpenCLIP (test-tiny) is not comparable with DINOv3.txt features of the
    same width: refused as it is, accepted once load_memory re-encodes it with the new backbone."""
    from rns_ros.core.adapter.test_time import TestTimeAdapter
    from rns_ros.core.segmenter import Segmenter

    backbones = pytest.importorskip("rns_ros.core.backbones")
    clip, dino = backbones.build_backbone("test-tiny"), backbones.build_backbone("test-tiny-dinotxt")
    assert clip.dim == dino.dim  # same width: only the identity tells them apart
    memory = SupportMemory(clip.dim, backbone_identity=clip.identity)
    car = memory.add_class("car", clip.encode_text(["car"])[0])
    ex = Exemplar(random_image(np.random.default_rng(3), 40, 60), np.full((40, 60), car, np.int64))
    memory.add_image_features(*encode_exemplar(clip, ex), exemplar=ex)
    save_memory(memory, tmp_path / "mem")
    with pytest.raises(ValueError, match="pass backbone"):
        load_memory(tmp_path / "mem", expected_identity=dino.identity)
    with pytest.raises(ValueError, match="re-encode"):
        Segmenter(dino, load_memory(tmp_path / "mem")[0], TestTimeAdapter())
    loaded, report = load_memory(tmp_path / "mem", backbone=dino)
    assert report.reencoded and loaded.backbone_identity == dino.identity
    Segmenter(dino, loaded, TestTimeAdapter())  # accepted now
    np.testing.assert_allclose(loaded.bank()[0].numpy(), encode_exemplar(dino, ex)[0].numpy(), atol=1e-5)
