"""The node's runtime teaching services as plain handlers: request -> checks -> one engine change
under the engine's lock -> automatic save -> response.

No rclpy node logic lives here (only message types), so the handlers are unit-testable without
DDS. `Teacher(engine, ...)` holds everything a handler needs; the node registers
`teacher.add_classes`, `teacher.add_exemplar`, ... as service callbacks (see node.py,
docs/teaching.md).

Contract of every handler: it never raises; a refused request answers success=false with the
reason and changes nothing (memory, version, files). A mutating request is applied under
`engine.lock`, which the engine also holds for a whole frame, so a change lands between two frames;
it bumps the support version, is saved atomically to `memory_dir` before the answer is sent
(a crash after the answer keeps it), then `on_change()` republishes ~/class_map.
"""
from __future__ import annotations

import functools
import threading
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
from sensor_msgs.msg import Image

from rns_ros.ros import interfaces
from rns_ros.ros.conversions import (FrameError, confidence_to_image, image_to_rgb, labels_to_image,
                                     mask_from_image)

TEACH_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")  # images the services accept


class Refused(ValueError):
    """A request the node refuses; the message says why and how to fix it."""


def _given(img: Image) -> bool:
    return int(img.width) > 0 and int(img.height) > 0


def decode_request_image(msg: Image, what: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 RGB from a request image in one of TEACH_ENCODINGS; Refused otherwise."""
    if msg.encoding.lower() not in TEACH_ENCODINGS:
        raise Refused(f"{what} encoding {msg.encoding!r} is not supported; use one of {list(TEACH_ENCODINGS)}")
    try:
        return image_to_rgb(msg)
    except FrameError as exc:
        raise Refused(f"bad {what}: {exc}") from exc


def decode_mask(msg: Image, size: tuple[int, int], what: str) -> np.ndarray:
    """(H, W) bool from a mono8 mask of the image's size with at least one non-zero pixel."""
    try:
        mask = mask_from_image(msg)
    except FrameError as exc:
        raise Refused(f"bad {what}: {exc}") from exc
    if mask.shape != size:
        raise Refused(f"{what} is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]}; "
                      "they must be the same size")
    if not mask.any():
        raise Refused(f"{what} is empty (all zero): mark at least one pixel of the object")
    return mask


def _handler(method):
    """Run a handler; a Refused/ValueError becomes success=false on a fresh response, anything else
    is reported as an internal error. Never raises."""
    @functools.wraps(method)
    def wrapper(self, request, response):
        try:
            method(self, request, response)
            response.success = True
            return response
        except Exception as exc:  # noqa: BLE001 - a service must answer, whatever happened
            fresh = type(response)()
            fresh.success = False
            if isinstance(exc, ValueError):
                fresh.message = f"refused: {exc}"
            else:
                fresh.message = f"internal error: {exc!r}"
                self.log_error(f"{method.__name__} failed: {traceback.format_exc()}")
            if hasattr(fresh, "class_map"):
                try:
                    fresh.class_map = self.class_map()
                except Exception:  # noqa: BLE001
                    pass
            return fresh
    return wrapper


class Teacher:
    """Teaching handlers over an engine (`RnsEngine`: memory at `engine.segmenter.memory`).

    memory_dir: where every change is saved (None = no automatic saving).
    latest_frame: () -> the latest camera Image the node received, or None.
    masker: () -> a `PromptMasker` (SAM 2), built on first use (boxes, points, scribbles).
    on_change: called after every applied change (the node republishes ~/class_map).
    stamp: () -> builtin_interfaces/Time for class maps. log_error/log_info: (str) -> None.
    """

    def __init__(self, engine, *, memory_dir: str | Path | None = None,
                 latest_frame: Callable[[], Image | None] = lambda: None,
                 masker: Callable[[], object] | None = None, on_change: Callable[[], None] = lambda: None,
                 stamp: Callable[[], object] | None = None, log_error: Callable[[str], None] = lambda s: None,
                 log_info: Callable[[str], None] = lambda s: None, max_image_pixels: int = 16_777_216):
        self.engine = engine
        self.memory_dir = Path(memory_dir).expanduser() if memory_dir else None
        self.latest_frame = latest_frame
        self._masker_factory = masker
        self._masker = None
        self._masker_lock = threading.Lock()
        self.on_change = on_change
        self.stamp = stamp
        self.log_error = log_error
        self.log_info = log_info
        self.max_image_pixels = max_image_pixels
        self.processing_enabled = True
        self.last_save_error: str | None = None
        self.load_problems: list[str] = []

    # ------------------------------------------------------------------ helpers
    @property
    def _segmenter(self):
        seg = getattr(self.engine, "segmenter", None)
        if seg is None:
            raise Refused("this engine has no support memory to teach (not an RnsEngine)")
        return seg

    def class_map(self):
        from builtin_interfaces.msg import Time

        with self.engine.lock:
            entries, version = self.engine.classes(), self.engine.support_version()
        return interfaces.class_map(entries, version, self.engine.backbone_identity,
                                    self.stamp() if self.stamp else Time())

    def _class_ids_by_name(self) -> dict[str, int]:
        return {e.name: e.id for e in self.engine.classes() if e.name}

    def _image(self, msg: Image) -> np.ndarray:
        """The request image, or the latest camera frame when the request's image is empty."""
        if not _given(msg):
            msg = self.latest_frame()
            if msg is None:
                raise Refused("no image given and no camera frame seen yet on `image`; send an image "
                              "or wait for the camera")
            what = "latest camera frame"
        else:
            what = "image"
        rgb = decode_request_image(msg, what)
        if rgb.shape[0] * rgb.shape[1] > self.max_image_pixels:
            raise Refused(f"{what} has {rgb.shape[0] * rgb.shape[1]} pixels, above max_image_pixels "
                          f"{self.max_image_pixels}")
        return rgb

    def save(self) -> str | None:
        """Save the memory to memory_dir (caller holds the lock); returns a warning or None."""
        if self.memory_dir is None or getattr(self.engine, "segmenter", None) is None:
            return None
        from rns_ros.core.memory.persistence import save_memory

        try:
            save_memory(self.engine.segmenter.memory, self.memory_dir)
            self.last_save_error = None
            return None
        except Exception as exc:  # noqa: BLE001 - the change stands; the failure is reported loudly
            self.last_save_error = f"could not save the memory to {self.memory_dir}: {exc}"
            self.log_error(self.last_save_error)
            return self.last_save_error

    def _applied(self, message: str, warning: str | None) -> str:
        try:
            self.on_change()
        except Exception as exc:  # noqa: BLE001
            self.log_error(f"republishing the class map failed: {exc!r}")
        return message + (f" (WARNING: {warning})" if warning else "")

    def masker(self):
        if self._masker is None:
            if self._masker_factory is None:
                raise Refused("no SAM 2 prompt model configured; send a mask instead")
            self._masker = self._masker_factory()
        return self._masker

    def prompt_mask(self, rgb: np.ndarray, kind: str, prompt) -> np.ndarray:
        """SAM 2 mask of `rgb` for a box / points / scribble prompt; Refused on bad prompts."""
        with self._masker_lock:
            masker = self.masker()
            masker.set_image(rgb)
            try:
                if kind == "box":
                    mask = masker.from_box(prompt)
                elif kind == "points":
                    mask = masker.from_points(*prompt)
                else:
                    mask = masker.from_scribble(prompt)
            finally:
                masker.reset()
        if not np.asarray(mask).any():
            raise Refused(f"SAM 2 found no object for this {kind}; try another prompt or send a mask")
        return np.asarray(mask, dtype=bool)

    # ------------------------------------------------------------------ classes
    @_handler
    def add_classes(self, request, response):
        names, descriptions = list(request.names), list(request.descriptions)
        if not names:
            raise Refused("no class names given")
        with self.engine.lock:
            ids = self.engine.add_classes(names, descriptions)
            warning = self.save()
        response.class_ids = [int(i) for i in ids]
        response.message = self._applied(f"added {', '.join(f'{n!r} (id {i})' for n, i in zip(names, ids))}",
                                         warning)
        response.class_map = self.class_map()

    @_handler
    def remove_classes(self, request, response):
        names = list(request.names)
        if not names:
            raise Refused("no class names given")
        if len(set(names)) != len(names):
            raise Refused(f"class names listed twice in {names}")
        memory = self._segmenter.memory
        with self.engine.lock:
            ids = self._class_ids_by_name()
            unknown = [n for n in names if n not in ids]
            if unknown:
                raise Refused(f"unknown class(es) {unknown}; known: {sorted(ids)}")
            for name in names:
                memory.remove_class(ids[name])
            warning = self.save()
        response.message = self._applied(f"removed {names}", warning)
        response.class_map = self.class_map()

    @_handler
    def list_classes(self, request, response):
        response.class_map = self.class_map()
        response.message = f"{len(response.class_map.classes)} classes"

    # ------------------------------------------------------------------ exemplars
    def _annotation(self, request, rgb: np.ndarray) -> tuple[str, np.ndarray]:
        """(kind, (H, W) bool mask) of the request's single annotation."""
        size = rgb.shape[:2]
        given = [k for k, present in (("mask", _given(request.mask)), ("box", len(request.box) > 0),
                                      ("points", len(request.points) > 0 or len(request.point_labels) > 0),
                                      ("scribble", _given(request.scribble))) if present]
        if len(given) != 1:
            raise Refused(f"give exactly one annotation (mask, box, points or scribble), got "
                          f"{given or 'none'}")
        kind = given[0]
        if kind == "mask":
            return kind, decode_mask(request.mask, size, "mask")
        if kind == "scribble":
            return kind, self.prompt_mask(rgb, kind, decode_mask(request.scribble, size, "scribble"))
        h, w = size
        if kind == "box":
            box = np.asarray(request.box, dtype=np.float64)
            if box.shape != (4,) or not np.all(np.isfinite(box)):
                raise Refused(f"box must be 4 finite numbers [x_min, y_min, x_max, y_max], got {list(request.box)}")
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise Refused(f"box {box.tolist()} is not inside the {w}x{h} image with min < max")
            return kind, self.prompt_mask(rgb, kind, box)
        if len(request.points) != len(request.point_labels):
            raise Refused(f"{len(request.points)} points but {len(request.point_labels)} point_labels; "
                          "give one label per point")
        pts = np.array([[p.x, p.y] for p in request.points], dtype=np.float64)
        labels = np.array([1 if v else 0 for v in request.point_labels], dtype=np.int32)
        if not np.all(np.isfinite(pts)):
            raise Refused("points contain NaN or inf")
        outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
        if outside.any():
            raise Refused(f"points {pts[outside].tolist()} are outside the {w}x{h} image")
        if not labels.any():
            raise Refused("at least one point must be positive (on the object)")
        return kind, self.prompt_mask(rgb, kind, (pts, labels))

    @_handler
    def add_exemplar(self, request, response):
        from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar

        name = request.class_name
        if not name.strip():
            raise Refused("class_name is empty")
        segmenter = self._segmenter
        with self.engine.lock:
            exists = name in self._class_ids_by_name()
        if not exists and not request.create_class:
            raise Refused(f"unknown class {name!r}; add it first or set create_class")
        rgb = self._image(request.image)
        kind, mask = self._annotation(request, rgb)
        with self.engine.lock:
            memory = segmenter.memory
            ids = self._class_ids_by_name()
            cid = ids.get(name)
            if cid is None and not request.create_class:
                raise Refused(f"class {name!r} was removed meanwhile")
            # Encode before touching the memory, so a failure changes nothing.
            probe = Exemplar.from_mask(rgb, mask, cid or memory.next_class_id)
            feats, class_ids = encode_exemplar(segmenter.backbone, probe)
            if not class_ids:
                raise Refused("the marked area vanishes at the backbone's resolution; mark a larger area")
            created = cid is None
            if created:
                cid = memory.add_class(name)
            try:
                eid = memory.add_image_features(feats, [cid], exemplar=Exemplar.from_mask(rgb, mask, cid))
            except Exception:
                if created:
                    memory.remove_class(cid)
                raise
            warning = self.save()
        from rns_ros.ros.conversions import _image

        response.exemplar_id, response.class_id = int(eid), int(cid)
        response.mask = _image(request.image.header, mask.shape[0], mask.shape[1], "mono8", mask.shape[1],
                               mask.astype(np.uint8) * 255)
        response.message = self._applied(
            f"exemplar {eid} of {name!r} (id {cid}{', new class' if created else ''}) from a {kind}, "
            f"{int(mask.sum())} pixels", warning)
        response.class_map = self.class_map()

    @_handler
    def remove_exemplars(self, request, response):
        memory = self._segmenter.memory
        wanted = [int(e) for e in request.exemplar_ids]
        if not wanted and not request.class_name:
            raise Refused("nothing to remove: give exemplar_ids and/or class_name")
        with self.engine.lock:
            known = set(memory.exemplar_ids)
            unknown = sorted(set(wanted) - known)
            if unknown:
                raise Refused(f"unknown exemplar id(s) {unknown}; known: {sorted(known)}")
            targets = set(wanted)
            if request.class_name:
                ids = self._class_ids_by_name()
                if request.class_name not in ids:
                    raise Refused(f"unknown class {request.class_name!r}; known: {sorted(ids)}")
                of_class = set(memory.class_record(ids[request.class_name]).exemplar_ids)
                if not of_class and not wanted:
                    raise Refused(f"class {request.class_name!r} has no exemplars")
                targets |= of_class
            for eid in sorted(targets):
                memory.remove_exemplar(eid)
            warning = self.save()
        response.removed_count = len(targets)
        response.message = self._applied(f"removed exemplar(s) {sorted(targets)}", warning)
        response.class_map = self.class_map()

    # ------------------------------------------------------------------ persistence
    @_handler
    def save_support(self, request, response):
        from rns_ros.core.memory.persistence import save_memory

        directory = Path(request.directory).expanduser() if request.directory else self.memory_dir
        if directory is None:
            raise Refused("no directory given and no memory_dir configured")
        with self.engine.lock:
            save_memory(self._segmenter.memory, directory)
        response.directory = str(directory)
        response.message = f"saved {len(self.engine.classes())} classes to {directory}"

    @_handler
    def load_support(self, request, response):
        from rns_ros.core.memory.merging import merge_memory
        from rns_ros.core.memory.persistence import load_memory

        if not request.directory:
            raise Refused("give the directory of a memory saved with ~/save_support")
        segmenter = self._segmenter
        directory = Path(request.directory).expanduser()
        with self.engine.lock:
            try:
                memory, report = load_memory(directory, backbone=segmenter.backbone,
                                             device=segmenter.memory.device)
            except (OSError, ValueError) as exc:
                raise Refused(f"cannot load {directory}: {exc}") from exc
            if request.merge:
                try:
                    merged = merge_memory(segmenter.memory, memory)
                except ValueError as exc:
                    raise Refused(f"cannot merge {directory}: {exc}") from exc
                done = (f"merged {len(memory.class_ids)} classes ({len(merged.new_class_ids)} new) and "
                        f"{len(merged.exemplar_ids)} exemplars from {directory}")
            else:
                self.replace_memory(memory)
                done = f"loaded {len(memory.class_ids)} classes, {memory.num_exemplars} exemplars from {directory}"
            warning = self.save()
        problems = "" if report.ok else f"; problems: {describe_report(report)}"
        response.message = self._applied(done + problems, warning)
        response.class_map = self.class_map()

    def replace_memory(self, memory) -> None:
        """Swap the engine's memory for `memory` (caller holds the lock); the version keeps rising."""
        old = self._segmenter.memory
        memory.continue_version_after(old.version)  # support_version never goes back
        self._segmenter.memory = memory

    def restore(self) -> None:
        """Load memory_dir into the engine if a memory is stored there (on configure).

        Corrupt files are set aside by load_memory (never overwritten) and listed in
        `load_problems` (the node logs them and shows them in /diagnostics)."""
        if self.memory_dir is None or getattr(self.engine, "segmenter", None) is None:
            return
        from rns_ros.core.memory.persistence import CorruptFileError, load_memory

        if not (self.memory_dir / "memory.json").exists() and not (self.memory_dir / "memory.prev.json").exists():
            return
        segmenter = self._segmenter
        with self.engine.lock:
            try:
                memory, report = load_memory(self.memory_dir, backbone=segmenter.backbone,
                                             device=segmenter.memory.device)
            except CorruptFileError as exc:  # the bad manifest was set aside: start empty
                self.load_problems = [f"memory in {self.memory_dir} unreadable, set aside, starting empty: {exc}"]
                return
            except ValueError as exc:  # e.g. a newer format: keep it, and do not overwrite it
                self.load_problems = [f"memory in {self.memory_dir} not loaded, autosave disabled: {exc}"]
                self.memory_dir = None
                return
            self.replace_memory(memory)
        if not report.ok:
            self.load_problems = [describe_report(report)]

    # ------------------------------------------------------------------ segment + enable
    @_handler
    def segment(self, request, response):
        rgb = decode_request_image(request.image) if _given(request.image) else None
        if rgb is None:
            raise Refused("no image given")
        if rgb.shape[0] * rgb.shape[1] > self.max_image_pixels:
            raise Refused(f"image has more than max_image_pixels {self.max_image_pixels} pixels")
        with self.engine.lock:
            result = self.engine.segment(rgb)
            cmap = self.class_map()
        top = max((c.id for c in cmap.classes), default=0)
        response.labels = labels_to_image(result.labels, request.image.header, top)
        response.confidence = confidence_to_image(result.confidence, request.image.header)
        response.class_map = cmap
        response.message = f"segmented {rgb.shape[1]}x{rgb.shape[0]} with {len(cmap.classes)} classes"

    @_handler
    def enable(self, request, response):
        self.processing_enabled = bool(request.data)
        response.message = "processing enabled" if request.data else "processing paused (models stay loaded)"

    def diagnostics(self) -> dict[str, object]:
        out: dict[str, object] = {"processing_enabled": self.processing_enabled,
                                  "memory_dir": str(self.memory_dir) if self.memory_dir else "(not saved)"}
        if self.last_save_error:
            out["memory_save_error"] = self.last_save_error
        if self.load_problems:
            out["memory_load_problems"] = " | ".join(self.load_problems)
        return out


def describe_report(report) -> str:
    """One line naming what a LoadReport set aside, dropped or could not restore."""
    parts = list(report.messages)
    parts += [f"set aside {s.path} -> {s.moved_to} ({s.reason})" for s in report.set_aside]
    if report.dropped_exemplars:
        parts.append(f"dropped exemplars {report.dropped_exemplars}")
    if report.exemplars_without_raw:
        parts.append(f"exemplars without raw image {report.exemplars_without_raw}")
    if report.classes_without_text:
        parts.append(f"classes without text {report.classes_without_text}")
    return "; ".join(parts) or "ok"


def default_memory_dir(node_name: str) -> Path:
    """$ROS_HOME/rns_ros/<node name> (ROS_HOME defaults to ~/.ros): where the memory is kept when
    the memory_dir parameter is ''."""
    import os

    return Path(os.environ.get("ROS_HOME") or Path.home() / ".ros") / "rns_ros" / node_name


def prompt_masker_factory(engine, proposals) -> Callable[[], object]:
    """() -> PromptMasker for the engine's device, sharing region mode's SAM 2 model if there is one."""
    def build():
        from dataclasses import replace

        from rns_ros.core.regions.prompts import PromptMasker

        config = replace(proposals, device=engine.device)
        proposer = getattr(getattr(engine, "segmenter", None), "proposer", None)
        if proposer is not None:
            return PromptMasker(proposer.model, config=config)
        return PromptMasker(config)
    return build
