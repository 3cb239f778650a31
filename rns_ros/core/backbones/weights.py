"""Finding backbone weights on disk or on the Hugging Face hub, failing fast when offline.

The hub client retries for about a minute when the network is down; a robot that boots without
internet must instead learn within seconds how to provide the weights. So the order is: an
explicit checkpoint file; the local HF cache; `HF_HUB_OFFLINE` -> stop; a short TCP probe of the
hub -> stop if unreachable; only then a download.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from rns_ros.core.advice import AdvisedError

# open_clip publishes weights under these names; the safetensors file is preferred.
OPENCLIP_HF_FILENAMES: tuple[str, ...] = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
PROBE_TIMEOUT_S = 3.0  # how long the reachability check may wait for the hub (or proxy) to answer
ETAG_TIMEOUT_S = 10.0  # per-request metadata timeout once the hub answered the probe


class WeightsUnavailableError(AdvisedError, FileNotFoundError):
    """Backbone weights are neither given as a file, nor cached, nor downloadable right now.
    The message says how to provide them in the caller's terms (`explain`, core/advice.py)."""


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """`name:size:hash16` of a weights file, stable across copies (unlike the mtime).

    The hash covers the size and the first and last 4 MiB: cheap for 600 MB checkpoints, and any
    two real checkpoints of one architecture differ there.
    """
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    chunk = 4 << 20
    with open(p, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            h.update(f.read(chunk))
    return f"{p.name}:{size}:{h.hexdigest()[:16]}"


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint as an existing file path, or FileNotFoundError naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint file {str(p)!r} does not exist (or is not a file); "
                                "pass the path of a downloaded open_clip checkpoint, e.g. "
                                "open_clip_pytorch_model.bin or open_clip_model.safetensors")
    return p


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network access."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def reachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `url`'s host (or the HTTPS proxy, if one is set) opens in time.

    Runs in a daemon thread so that a hanging DNS lookup cannot stall the caller either.
    """
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    parsed = urlparse(proxy or url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    answer: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    return bool(answer and answer[0])


def _how_to_provide(repo_id: str, filenames: tuple[str, ...], what: str) -> str:
    return (f"{what}. Provide the weights in one of these ways: "
            f"(1) pass a local checkpoint file: {{checkpoint=/path/{filenames[-1]}}}; "
            f"(2) pre-populate the Hugging Face cache on a machine with internet "
            f"(`huggingface-cli download {repo_id} {filenames[-1]}`) and copy the cache directory "
            f"(default ~/.cache/huggingface/hub, or $HF_HUB_CACHE) to this machine; "
            f"(3) for a smoke test without real weights use {{backbone=test-tiny}} "
            f"(random weights, meaningless predictions).")


def resolve_hub_weights(repo_id: str, filenames: tuple[str, ...] = OPENCLIP_HF_FILENAMES, *,
                        cache_dir: str | os.PathLike | None = None,
                        probe_timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """Local path of a hub-hosted weights file: from the cache, else downloaded if the hub answers.

    Tries `filenames` in order. Raises WeightsUnavailableError within about `probe_timeout_s`
    seconds when the file is not cached and the hub is offline or unreachable.
    """
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(cached, str) and os.path.isfile(cached):
            return cached
    where = f"{repo_id} ({' or '.join(filenames)})"
    if hub_offline():
        raise WeightsUnavailableError(_how_to_provide(
            repo_id, filenames, f"weights {where} are not in the local Hugging Face cache and "
                                "HF_HUB_OFFLINE is set, so they cannot be downloaded"))
    endpoint = hub_endpoint()
    if not reachable(endpoint, probe_timeout_s):
        raise WeightsUnavailableError(_how_to_provide(
            repo_id, filenames, f"weights {where} are not in the local Hugging Face cache and the hub "
                                f"({endpoint}) is unreachable from this machine"))
    from huggingface_hub import hf_hub_download

    errors = []
    for name in filenames:
        try:
            return hf_hub_download(repo_id, name, cache_dir=cache_dir, etag_timeout=ETAG_TIMEOUT_S)
        except Exception as exc:  # missing file variant, HTTP error: try the next name
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    raise WeightsUnavailableError(_how_to_provide(
        repo_id, filenames, f"downloading {where} failed ({'; '.join(errors)})"))


# DINOv3.txt's two official weight files (Meta's names), here because this module imports no model code
DINOTXT_BACKBONE_FILE = "dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth"
DINOTXT_HEADS_FILE = "dinov3_vitl16_dinotxt_vision_head_and_text_encoder-a442d8f5.pth"


def dinotxt_how_to_provide() -> str:
    """The fix when DINOv3.txt has no checkpoint (an `AdvisedError` template, core/advice.py): its
    two official files are only distributed by Meta (a download form on
    github.com/facebookresearch/dinov3), never by a model hub."""
    return ("backbone 'dinov3txt-vitl16' needs its two official weight files, which no hub serves: "
            "request them from Meta (facebookresearch/dinov3 README, DINOv3 license) and download "
            f"{DINOTXT_BACKBONE_FILE} (the ViT-L/16 backbone) and {DINOTXT_HEADS_FILE} (dino.txt). Then pass "
            "the folder holding both, {checkpoint=DIR}, or both paths, {checkpoint=BACKBONE.pth,DINOTXT.pth}. "
            "For a smoke test without weights use {backbone=test-tiny-dinotxt} "
            "(random weights, meaningless predictions).")
