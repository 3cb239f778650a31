"""Who may use the console, and where the page may save: the access token and snapshot names.

Every request needs the token, as `Authorization: Bearer <token>` (API clients) or the cookie the
page gets when it is opened with `/?token=<token>` (HttpOnly, SameSite=Strict, so another site
can neither read it nor make the browser send it). Tokens are compared in constant time.

The page never names a path: save and load take either nothing (the node's own memory_dir) or a
snapshot *name*, which becomes `<snapshot_dir>/<name>` only when it is a plain name (letters,
digits, `.`, `_`, `-`; no `..`, no `/`, not absolute) and, where the console can see the
directory, no symlink leads out of it (a snapshot to load must hold plain files only).
"""
from __future__ import annotations

import hmac
import re
import secrets
from pathlib import Path

COOKIE = "rns_console_token"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_token() -> str:
    """A random URL-safe token (32 bytes of entropy)."""
    return secrets.token_urlsafe(32)


def token_matches(given: str | None, token: str) -> bool:
    """Whether `given` is the token (constant time; None or '' never matches)."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def request_token(headers, cookies) -> str | None:
    """The token a request carries: the Bearer header first, else the page's cookie."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return cookies.get(COOKIE)


class BadSnapshot(ValueError):
    """A snapshot name or place the console refuses; the message says why."""


def snapshot_path(root: Path, name: str, *, must_exist: bool) -> Path:
    """`root/name` for a valid snapshot name; BadSnapshot when the name is not a plain name, when
    the path (or the root) is a symlink out of the root, or (must_exist) when no snapshot is there."""
    if not isinstance(name, str) or not SNAPSHOT_NAME.match(name) or name in (".", "..") or ".." in name:
        raise BadSnapshot(f"snapshot names are 1..64 letters, digits, '.', '_' or '-' (no '..', no '/'), "
                          f"got {name!r}")
    path = root / name
    if path.is_symlink():
        raise BadSnapshot(f"snapshot {name!r} is a symbolic link; only plain directories inside the "
                          "snapshot directory are used")
    if root.exists():
        real_root = root.resolve()
        if path.resolve().parent != real_root:
            raise BadSnapshot(f"snapshot {name!r} leads out of the snapshot directory {root}")
    if must_exist:
        if not (path / "memory.json").is_file():
            raise BadSnapshot(f"no snapshot named {name!r} in {root}")
        linked = [p for p in path.rglob("*") if p.is_symlink()]
        if linked:
            raise BadSnapshot(f"snapshot {name!r} holds symbolic links ({linked[0].relative_to(path)}); "
                              "a snapshot must be plain files")
    return path


def list_snapshots(root: Path) -> list[str]:
    """Names of the snapshots in `root` (plain directories holding a memory.json), sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if SNAPSHOT_NAME.match(p.name) and not p.is_symlink() and p.is_dir()
                  and (p / "memory.json").is_file())
