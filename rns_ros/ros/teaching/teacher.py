"""The node's runtime teaching services as plain handlers: request -> checks -> one engine change
under the engine's lock -> automatic save -> response.

No rclpy node logic lives here (only message types), so the handlers are unit-testable without
DDS. `Teacher(engine, ...)` holds everything a handler needs; the node registers
`teacher.add_classes`, `teacher.add_exemplar`, ... as service callbacks (services.py,
docs/teaching.md). Request checks live in requests.py, SAM 2 prompting in prompting.py,
saving and restoring the memory in memory_store.py.

Class names follow one rule everywhere (rns_ros/core/memory/names.py): stripped, at most 128
characters, unique without case; a request may name a class in any spelling ('Mug' finds 'mug').
Messages shorten long names and long lists of them.

Contract of every handler: it never raises; a refused request answers success=false with the
reason and changes nothing (memory, version, files). A mutating request is applied under
`engine.lock`, which the engine also holds for a whole frame, so a change lands between two frames;
it bumps the support version, is saved atomically to `memory_dir` before the answer is sent
(a crash after the answer keeps it), then `on_change()` republishes ~/class_map. The save copies the
memory under the lock and writes the copy after letting go of it (memory_store.py), so frames do
not wait for the disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from rns_ros.core.memory.names import clean_name, describe_names, find_name, shorten
from rns_ros.ros.outputs.class_map import class_map_message
from rns_ros.ros.conversions import confidence_to_image, labels_to_image
from rns_ros.ros.teaching.memory_store import MemoryStore, PendingSave, describe_report
from rns_ros.ros.teaching.prompting import PromptMasks
from rns_ros.ros.teaching.requests import (Refused, decode_request_image, describe_taught_frame, given,
                                           parse_annotation, service_handler)
from rns_ros.ros.teaching.class_ids import Ceiling, ClassIdLimit
from rns_ros.visual import Palette


def describe_ids(ids: Sequence[int], limit: int = 8) -> str:
    """Ids for a message: the first `limit`, then "and N more"."""
    shown = ", ".join(str(int(i)) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


class Teacher:
    """Teaching handlers over an engine (`RnsEngine`: memory at `engine.segmenter.memory`).

    memory_dir: where every change is saved (None = no automatic saving).
    latest_frame: () -> the latest camera Image the node received, or None (FrameError if it is
    a compressed frame that cannot be decoded).
    latest_valid_frame: () -> the latest camera Image the node decoded without error, or None: what
    "the latest frame" falls back to when the newest one is malformed.
    masker: () -> a `PromptMasker` (SAM 2), built on first use (boxes, points, scribbles).
    on_change: called after every applied change (the node republishes ~/class_map).
    before_save: (memory) -> None, called under the lock before each save is copied (the fleet sync publishes
    the change, rns_ros/ros/fleet/link.py); an error inside it is logged, the change stands.
    stamp, palette: () -> the Time / Palette of class maps. log_error/log_info: (str) -> None.
    class_id_ceiling: () -> (largest class id allowed, why) or None: changes that would create a
    class above it are refused (class_ids.py; the node sets 255 with depth.aligned_outputs).
    """

    def __init__(self, engine, *, memory_dir: str | Path | None = None,
                 latest_frame: Callable[[], Image | None] = lambda: None,
                 latest_valid_frame: Callable[[], Image | None] = lambda: None,
                 masker: Callable[[], object] | None = None, on_change: Callable[[], None] = lambda: None,
                 stamp: Callable[[], object] | None = None, palette: Callable[[], Palette] = Palette,
                 log_error: Callable[[str], None] = lambda s: None,
                 log_info: Callable[[str], None] = lambda s: None, max_image_pixels: int = 16_777_216,
                 class_id_ceiling: Callable[[], Ceiling | None] = lambda: None):
        self.engine = engine
        self.store = MemoryStore(memory_dir, log_error)
        self.latest_frame = latest_frame
        self.latest_valid_frame = latest_valid_frame
        self.prompts = PromptMasks(masker)
        self.on_change = on_change
        self.stamp = stamp
        self.palette = palette
        self.log_error = log_error
        self.log_info = log_info
        self.max_image_pixels = max_image_pixels
        self.processing_enabled = True
        self.id_limit = ClassIdLimit(class_id_ceiling)
        self.before_save: Callable[[object], None] | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def _segmenter(self):
        seg = getattr(self.engine, "segmenter", None)
        if seg is None:
            raise Refused("this engine has no support memory to teach (not an RnsEngine)")
        return seg

    def class_map(self):
        with self.engine.lock:
            entries, version = self.engine.classes(), self.engine.support_version()
        return class_map_message(entries, version, self.engine.backbone_identity,
                                    self.stamp() if self.stamp else Time(), self.palette())

    def _class_ids_by_name(self) -> dict[str, int]:
        return {e.name: e.id for e in self.engine.classes() if e.name}

    def _find_class(self, name: str) -> tuple[str, int] | None:
        """(the name as the memory spells it, its id) of the class `name` refers to in any spelling
        (names.py), or None. The caller holds the engine lock."""
        ids = self._class_ids_by_name()
        found = find_name(name, ids)
        return None if found is None else (found, ids[found])

    def _image(self, msg: Image, latest_if_empty: bool = True) -> tuple[np.ndarray, Image]:
        """(RGB, the Image it came from): the request image, or, when it is empty (and only then:
        requests.given), the latest valid camera frame: the newest one, or when that one cannot be
        used, the newest one the node could decode."""
        if given(msg):
            return self._decoded(msg, "image"), msg
        if not latest_if_empty:
            raise Refused("no image given")
        try:
            newest = self.latest_frame()
            if newest is None:
                raise Refused("no image given and no camera frame seen yet on `image`; send an image "
                              "or wait for the camera")
            return self._decoded(newest, "latest camera frame"), newest
        except ValueError:  # a malformed newest frame: fall back to the newest valid one
            valid = self.latest_valid_frame()
            if valid is None or valid is newest:
                raise
            return self._decoded(valid, "latest valid camera frame"), valid

    def _decoded(self, msg: Image, what: str) -> np.ndarray:
        rgb = decode_request_image(msg, what)
        if rgb.shape[0] * rgb.shape[1] > self.max_image_pixels:
            raise Refused(f"{what} has {rgb.shape[0] * rgb.shape[1]} pixels, above max_image_pixels "
                          f"{self.max_image_pixels}")
        return rgb

    def start_save(self) -> PendingSave:
        """Copy the memory for memory_dir (the caller holds the lock); the caller writes the copy
        with `.write()` after letting go of the lock, which returns a warning or None."""
        if getattr(self.engine, "segmenter", None) is None:
            return PendingSave()
        memory = self.engine.segmenter.memory
        if self.before_save is not None:
            try:
                self.before_save(memory)
            except Exception as exc:  # noqa: BLE001 - the change stands in the node and on disk
                self.log_error(f"sharing the change with the fleet failed: {exc!r}")
        return self.store.start_save(memory)

    def _applied(self, message: str, warning: str | None) -> str:
        try:
            self.on_change()
        except Exception as exc:  # noqa: BLE001
            self.log_error(f"republishing the class map failed: {exc!r}")
        return message + (f" (WARNING: {warning})" if warning else "")

    # ------------------------------------------------------------------ classes
    @service_handler
    def add_classes(self, request, response):
        names, descriptions = list(request.names), list(request.descriptions)
        if not names:
            raise Refused("no class names given")
        with self.engine.lock:
            self.id_limit.check_new(self.engine, len(names))
            ids = self.engine.add_classes(names, descriptions)
            spelled = {e.id: e.name for e in self.engine.classes()}
            names = [spelled[i] for i in ids]  # as added: stripped
            saving = self.start_save()
        warning = saving.write()
        response.class_ids = [int(i) for i in ids]
        response.message = self._applied(f"added {describe_names(names)} as id(s) {describe_ids(ids)}", warning)
        response.class_map = self.class_map()

    @service_handler
    def remove_classes(self, request, response):
        names = list(request.names)
        if not names:
            raise Refused("no class names given")
        memory = self._segmenter.memory
        with self.engine.lock:
            found = [self._find_class(n) for n in names]
            unknown = [n for n, f in zip(names, found) if f is None]
            if unknown:
                raise Refused(f"unknown class(es) {describe_names(unknown)}; known: "
                              f"{describe_names(sorted(self._class_ids_by_name()))}")
            if len(set(found)) != len(found):
                raise Refused(f"a class is listed twice in {describe_names(names)} (names compare without case)")
            for _, cid in found:
                memory.remove_class(cid)
            saving = self.start_save()
        warning = saving.write()
        response.message = self._applied(f"removed {describe_names([name for name, _ in found])}", warning)
        response.class_map = self.class_map()

    @service_handler
    def list_classes(self, request, response):
        response.class_map = self.class_map()
        response.message = f"{len(response.class_map.classes)} classes"

    # ------------------------------------------------------------------ exemplars
    def _annotation(self, request, rgb: np.ndarray) -> tuple[str, np.ndarray]:
        """(kind, (H, W) bool mask) of the request's single annotation (SAM 2 for the prompts)."""
        kind, prompt = parse_annotation(request, rgb.shape[:2])
        return kind, prompt if kind == "mask" else self.prompts.mask(rgb, kind, prompt)

    @service_handler
    def add_exemplar(self, request, response):
        """Teach one exemplar; with `dry_run` run every step and check of a real add (SAM 2 for a
        prompt, the backbone's encoding under the lock) and answer with the mask, storing nothing."""
        from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar

        name = clean_name(request.class_name, "class_name")
        segmenter = self._segmenter
        with self.engine.lock:
            exists = self._find_class(name) is not None
        if not exists and not request.create_class:
            raise Refused(f"unknown class {shorten(name)}; add it first or set create_class")
        rgb, frame = self._image(request.image)
        kind, mask = self._annotation(request, rgb)
        with self.engine.lock:
            memory = segmenter.memory
            name, cid = self._find_class(name) or (name, None)
            if cid is None and not request.create_class:
                raise Refused(f"class {shorten(name)} was removed meanwhile")
            if cid is None:
                self.id_limit.check_new(self.engine, 1)
            # Encode before touching the memory, so a failure changes nothing.
            probe = Exemplar.from_mask(rgb, mask, cid or memory.next_class_id)
            feats, class_ids = encode_exemplar(segmenter.backbone, probe)
            if not class_ids:
                raise Refused("the marked area vanishes at the backbone's resolution; mark a larger area")
            created = cid is None
            if not request.dry_run:
                if created:
                    cid = memory.add_class(name)
                try:
                    eid = memory.add_image_features(feats, [cid], exemplar=Exemplar.from_mask(rgb, mask, cid))
                except Exception:
                    if created:
                        memory.remove_class(cid)
                    raise
                saving = self.start_save()
        source = f"{kind if kind == 'points' else 'a ' + kind}, {int(mask.sum())} pixels"
        if request.dry_run:  # the mask always comes back: it is what a dry run is for
            response.class_id = int(cid or 0)
            taught_on = describe_taught_frame(response, frame, mask, True)
            what = "a new class" if created else f"id {cid}"
            response.message = f"dry run, nothing stored: an exemplar of {name!r} ({what}) from {source}, {taught_on}"
            response.class_map = self.class_map()
            return
        warning = saving.write()
        response.exemplar_id, response.class_id = int(eid), int(cid)
        taught_on = describe_taught_frame(response, frame, mask, request.return_mask)
        response.message = self._applied(
            f"exemplar {eid} of {shorten(name)} (id {cid}{', new class' if created else ''}) from {source}, {taught_on}",
            warning)
        response.class_map = self.class_map()

    @service_handler
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
                found = self._find_class(request.class_name)
                if found is None:
                    raise Refused(f"unknown class {shorten(request.class_name)}; known: "
                                  f"{describe_names(sorted(self._class_ids_by_name()))}")
                of_class = set(memory.class_record(found[1]).exemplar_ids)
                if not of_class and not wanted:
                    raise Refused(f"class {shorten(found[0])} has no exemplars")
                targets |= of_class
            for eid in sorted(targets):
                memory.remove_exemplar(eid)
            saving = self.start_save()
        warning = saving.write()
        response.removed_count = len(targets)
        response.message = self._applied(f"removed exemplar(s) {sorted(targets)}", warning)
        response.class_map = self.class_map()

    # ------------------------------------------------------------------ persistence
    @service_handler
    def save_support(self, request, response):
        directory = Path(request.directory).expanduser() if request.directory else self.store.directory
        if directory is None:
            raise Refused("no directory given and no memory_dir configured")
        with self.engine.lock:
            write = self.store.start_copy(self._segmenter.memory, directory)
        write()
        response.directory = str(directory)
        response.message = f"saved {len(self.engine.classes())} classes to {directory}"

    @service_handler
    def load_support(self, request, response):
        from rns_ros.core.memory.merging import classes_to_create, merge_memory
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
                self.id_limit.check_new(self.engine, len(classes_to_create(segmenter.memory, memory)))
                try:
                    merged = merge_memory(segmenter.memory, memory)
                except ValueError as exc:
                    raise Refused(f"cannot merge {directory}: {exc}") from exc
                done = (f"merged {len(memory.class_ids)} classes ({len(merged.new_class_ids)} new) and "
                        f"{len(merged.exemplar_ids)} exemplars from {directory}")
            else:
                self.id_limit.check_existing(memory.class_ids)
                self.replace_memory(memory)
                done = f"loaded {len(memory.class_ids)} classes, {memory.num_exemplars} exemplars from {directory}"
            saving = self.start_save()
        warning = saving.write()
        problems = "" if report.ok else f"; problems: {describe_report(report)}"
        response.message = self._applied(done + problems, warning)
        response.class_map = self.class_map()

    def replace_memory(self, memory) -> None:
        """Swap the engine's memory for `memory` (caller holds the lock); the version keeps rising."""
        old = self._segmenter.memory
        memory.continue_version_after(old.version)  # support_version never goes back
        self._segmenter.memory = memory

    def restore(self, initial_classes: Sequence[str] = ()) -> None:
        """On configure: load memory_dir into the engine if a memory is stored there, then add the
        `initial_classes` it lacks (in their order) and save. What could not be restored is logged
        and kept in `store.load_problems` (shown in /diagnostics), and so are class ids above the
        id ceiling (a memory taught before it was on); an engine error is raised."""
        segmenter = getattr(self.engine, "segmenter", None)
        if segmenter is not None:
            with self.engine.lock:
                memory = self.store.load(segmenter.backbone, segmenter.memory.device)
                if memory is not None:
                    self.replace_memory(memory)
        for problem in self.store.load_problems:
            self.log_error(f"support memory: {problem}")
        saving = PendingSave()
        with self.engine.lock:
            known = [e.name for e in self.engine.classes()]
            above_ceiling = self.id_limit.restored_problem(e.id for e in self.engine.classes())
            if above_ceiling:
                self.log_error(above_ceiling)
            missing = [n for n in initial_classes if find_name(n, known) is None]
            if missing:
                self.id_limit.check_new(self.engine, len(missing))
                self.engine.add_classes(missing)
                saving = self.start_save()
        saving.write()

    # ------------------------------------------------------------------ segment + enable
    @service_handler
    def segment(self, request, response):
        rgb, _ = self._image(request.image, latest_if_empty=False)
        with self.engine.lock:
            result = self.engine.segment(rgb)
            cmap = self.class_map()
        top = max((c.id for c in cmap.classes), default=0)
        response.labels = labels_to_image(result.labels, request.image.header, top)
        response.confidence = confidence_to_image(result.confidence, request.image.header)
        response.class_map = cmap
        response.message = f"segmented {rgb.shape[1]}x{rgb.shape[0]} with {len(cmap.classes)} classes"

    @service_handler
    def enable(self, request, response):
        self.processing_enabled = bool(request.data)
        response.message = "processing enabled" if request.data else "processing paused (models stay loaded)"

    def diagnostics(self) -> dict[str, object]:
        values = {"processing_enabled": self.processing_enabled, **self.store.diagnostics()}
        if self.id_limit.active:
            values["classes_refused_id_limit"] = self.id_limit.refusals
        return values
