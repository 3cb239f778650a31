"""What travels between robots: class states, exemplars and updates, ROS-free, and their checks.

    update = FleetUpdate(robot_id="/a/rns@robot-a", session="5f3c...", backbone="test-tiny", dim=64,
                         sequence=1, snapshot=False, classes=(ClassState("mug", clock=1, clock_robot=...),),
                         exemplars_added=(SharedExemplar.of(("mug",), feats, origin="/a/rns@robot-a"),))
    check_update(update, dim=64, limits=FleetLimits())    # raises Malformed naming the problem

An exemplar is identified everywhere by `content_hash(class_names, features)`: the SHA-256 of its
class names and its stored float32 features (the memory stores unit-norm rows bit for bit, so the
hash of what a robot holds is the hash of what it received). The ROS messages (msg/Fleet*.msg) map
one to one onto these classes (rns_ros/ros/fleet/messages.py).

Contract of `check_update`: it looks at everything a message carries (sizes, shapes, NaN and inf,
zero rows, names, hashes against content, images against label maps) before anything of it may reach
a memory, and raises `Malformed` with the first problem; it changes nothing.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import torch

from rns_ros.core.memory.support import unit_rows

_HASH = re.compile(r"^[0-9a-f]{64}$")
HASH_DOMAIN = b"rns_ros.fleet.exemplar.v1\n"  # versions the hash definition


class Malformed(ValueError):
    """A fleet message that must not reach the memory (wrong sizes, NaN, bad hash, too large...).
    `kind` groups refusals in the statistics ("malformed", "too large")."""

    def __init__(self, message: str, kind: str = "malformed"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class FleetLimits:
    """What a received message may hold at most (larger or stranger ones are refused, counted)."""

    max_message_bytes: int = 256 * 2**20  # features + text + images + label maps of one message
    max_rows_per_exemplar: int = 1024  # feature rows (classes annotated) of one exemplar
    max_image_pixels: int = 16_777_216  # pixels of a shared exemplar image (fleet.share_masks)
    max_name_chars: int = 1024  # class names, descriptions, robot ids


def content_hash(class_names, features: np.ndarray) -> str:
    """Hex SHA-256 identifying an exemplar: its class names (one per feature row) and its (m, d)
    float32 features, little-endian. Class ids are local to a robot, so names are hashed."""
    feats = np.ascontiguousarray(features, dtype="<f4")
    digest = hashlib.sha256(HASH_DOMAIN)
    digest.update(f"{feats.shape[0]} {feats.shape[1]}\n".encode())
    for name in class_names:
        encoded = name.encode("utf-8")
        digest.update(f"{len(encoded)}:".encode() + encoded)
    digest.update(feats.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ClassState:
    """A class added (or held) or removed, with its last-writer-wins stamp (clock, clock_robot)."""

    name: str
    description: str = ""  # prompt encoded instead of the name ('' = the name)
    text: np.ndarray | None = None  # (d,) float32 unit-norm text feature, None = no text
    removed: bool = False
    clock: int = 0  # Lamport clock of the change that set this state
    clock_robot: str = ""  # the robot that made that change (breaks ties between equal clocks)

    @property
    def stamp(self) -> tuple[int, str]:
        return (int(self.clock), self.clock_robot)


@dataclass(frozen=True)
class SharedExemplar:
    """One exemplar as it travels: class names per feature row, features, the robot that taught
    it, and (fleet.share_masks) the image with its label map, whose value k > 0 is label_names[k-1]."""

    content_hash: str
    origin: str
    class_names: tuple[str, ...]
    features: np.ndarray  # (m, d) float32
    image: np.ndarray | None = None  # (H, W, 3) uint8 RGB
    labels: np.ndarray | None = None  # (H, W) integer, indexes label_names from 1
    label_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, class_names, features: np.ndarray, origin: str, **raw) -> "SharedExemplar":
        """An exemplar with its hash computed from `class_names` and `features`."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        names = tuple(class_names)
        return cls(content_hash(names, feats), origin, names, feats, **raw)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.features, self.image, self.labels) if a is not None)


@dataclass(frozen=True)
class FleetUpdate:
    """One message of the fleet topic: a robot's own change, or (snapshot) all it holds."""

    robot_id: str
    session: str  # new each time the sender's node starts
    backbone: str  # identity of the sender's backbone
    dim: int  # its feature size
    sequence: int  # the sender's change counter (a snapshot: its latest change)
    snapshot: bool = False
    classes: tuple[ClassState, ...] = ()
    exemplars_added: tuple[SharedExemplar, ...] = ()
    exemplars_removed: tuple[str, ...] = ()  # content hashes

    @property
    def nbytes(self) -> int:
        """The bulk of the message: features, text features, images and label maps."""
        text = sum(c.text.nbytes for c in self.classes if c.text is not None)
        return text + sum(e.nbytes for e in self.exemplars_added)

    def is_empty(self) -> bool:
        return not (self.classes or self.exemplars_added or self.exemplars_removed)


# ---------------------------------------------------------------------- checks
def _check_name(value, what: str, limits: FleetLimits, allow_empty: bool = False) -> None:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise Malformed(f"{what} must be a non-empty string, got {value!r:.80}")
    if len(value) > limits.max_name_chars:
        raise Malformed(f"{what} has {len(value)} characters, above {limits.max_name_chars}")


def _check_rows(rows: np.ndarray, what: str, dim: int) -> None:
    if rows.dtype != np.float32:
        raise Malformed(f"{what} must be float32, got {rows.dtype}")
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise Malformed(f"{what} have shape {rows.shape}, not (rows, {dim}) of this backbone")
    if not np.isfinite(rows).all():
        raise Malformed(f"{what} contain NaN or inf")
    as_tensor = torch.from_numpy(np.ascontiguousarray(rows))
    if not torch.equal(unit_rows(as_tensor), as_tensor):  # the memory would change them: hashes would lie
        norms = np.linalg.norm(rows, axis=1)
        raise Malformed(f"{what} are not unit-norm (norms {norms.min():.6g}..{norms.max():.6g})")


def _check_exemplar(ex: SharedExemplar, dim: int, limits: FleetLimits) -> None:
    short = ex.content_hash[:12] if isinstance(ex.content_hash, str) else "?"
    if not isinstance(ex.content_hash, str) or not _HASH.match(ex.content_hash):
        raise Malformed(f"exemplar hash {ex.content_hash!r:.80} is not 64 lowercase hex digits")
    _check_name(ex.origin, f"exemplar {short}: origin", limits)
    names = ex.class_names
    if not names or len(names) > limits.max_rows_per_exemplar:
        raise Malformed(f"exemplar {short} has {len(names)} feature rows (1..{limits.max_rows_per_exemplar})")
    for name in names:
        _check_name(name, f"exemplar {short}: class name", limits)
    if len(set(names)) != len(names):
        raise Malformed(f"exemplar {short} names a class twice: {list(names)}")
    if not isinstance(ex.features, np.ndarray) or ex.features.shape[:1] != (len(names),):
        shape = getattr(ex.features, "shape", None)
        raise Malformed(f"exemplar {short} has features of shape {shape} for {len(names)} class names")
    _check_rows(ex.features, f"exemplar {short}: features", dim)
    if content_hash(names, ex.features) != ex.content_hash:
        raise Malformed(f"exemplar {short}: the hash does not match its class names and features")
    if (ex.image is None) != (ex.labels is None):
        raise Malformed(f"exemplar {short} has an image without a label map or the reverse")
    if ex.image is None:
        return
    if ex.image.dtype != np.uint8 or ex.image.ndim != 3 or ex.image.shape[2] != 3:
        raise Malformed(f"exemplar {short}: image must be (H, W, 3) uint8, got {ex.image.shape} {ex.image.dtype}")
    if ex.image.shape[0] * ex.image.shape[1] > limits.max_image_pixels:
        raise Malformed(f"exemplar {short}: image has {ex.image.shape[0] * ex.image.shape[1]} pixels, "
                        f"above {limits.max_image_pixels}")
    if ex.labels.shape != ex.image.shape[:2] or not np.issubdtype(ex.labels.dtype, np.integer):
        raise Malformed(f"exemplar {short}: label map {ex.labels.shape} {ex.labels.dtype} does not fit "
                        f"the image {ex.image.shape[:2]}")
    for name in ex.label_names:
        _check_name(name, f"exemplar {short}: label name", limits)
    top = int(ex.labels.max()) if ex.labels.size else 0
    if top > len(ex.label_names) or top == 0:
        raise Malformed(f"exemplar {short}: label map values 1..{top} need {top} label names, "
                        f"got {len(ex.label_names)}")
    if not set(names) <= set(ex.label_names):
        raise Malformed(f"exemplar {short}: classes {sorted(set(names) - set(ex.label_names))} have "
                        "features but no pixel in the label map")


def _check_class(state: ClassState, dim: int, limits: FleetLimits) -> None:
    _check_name(state.name, "class name", limits)
    _check_name(state.description, f"class {state.name!r}: description", limits, allow_empty=True)
    _check_name(state.clock_robot, f"class {state.name!r}: clock_robot", limits)
    if not isinstance(state.clock, int) or state.clock < 1:
        raise Malformed(f"class {state.name!r}: clock must be >= 1, got {state.clock!r}")
    if state.text is not None:
        if state.removed:
            raise Malformed(f"class {state.name!r}: a removal carries no text feature")
        if not isinstance(state.text, np.ndarray) or state.text.ndim != 1:
            raise Malformed(f"class {state.name!r}: text feature must be a (d,) array")
        _check_rows(state.text[None], f"class {state.name!r}: text feature", dim)


def check_size(nbytes: int, limits: FleetLimits) -> None:
    """Malformed (kind "too large") when a message carries more than `limits` allows."""
    if nbytes > limits.max_message_bytes:
        raise Malformed(f"{nbytes} bytes of features and images, above the limit of {limits.max_message_bytes} "
                        "(fleet.max_message_mb)", kind="too large")


def check_update(update: FleetUpdate, *, dim: int, limits: FleetLimits = FleetLimits()) -> None:
    """Raise Malformed naming the first problem of `update` for a memory of `dim`-d features."""
    _check_name(update.robot_id, "robot_id", limits)
    _check_name(update.session, "session", limits)
    if not isinstance(update.sequence, int) or update.sequence < 0:
        raise Malformed(f"sequence must be an int >= 0, got {update.sequence!r}")
    check_size(update.nbytes, limits)
    names = [c.name for c in update.classes]
    for state in update.classes:
        _check_class(state, dim, limits)
    if len(set(names)) != len(names):
        raise Malformed(f"a class is named twice in one message: {sorted(n for n in set(names) if names.count(n) > 1)}")
    for ex in update.exemplars_added:
        _check_exemplar(ex, dim, limits)
    for digest in update.exemplars_removed:
        if not isinstance(digest, str) or not _HASH.match(digest):
            raise Malformed(f"removed exemplar hash {digest!r:.80} is not 64 lowercase hex digits")

