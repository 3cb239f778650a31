"""Tokens and snapshot places (rns_ros/console/security.py): no name the page sends can reach a
path outside the snapshot directory."""
from __future__ import annotations

import os

import pytest

from rns_ros.console.security import (BadSnapshot, list_snapshots, new_token, request_token, snapshot_path,
                                      token_matches)
from rns_ros.console.settings import ConsoleConfig, config_from_parameters


def test_tokens_are_random_urlsafe_and_compared_exactly():
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40 and ConsoleConfig(token=a).token == a
    assert token_matches(a, a) and not token_matches(b, a) and not token_matches("", a) and not token_matches(None, a)
    assert not token_matches(a[:-1], a) and not token_matches(a + "x", a)


def test_the_bearer_header_wins_over_the_cookie():
    assert request_token({"authorization": "Bearer abc"}, {"rns_console_token": "def"}) == "abc"
    assert request_token({"authorization": "bearer  abc "}, {}) == "abc"
    assert request_token({"authorization": "Basic abc"}, {"rns_console_token": "def"}) == "def"
    assert request_token({}, {}) is None


@pytest.mark.parametrize("name", ["..", ".", "../etc", "a/b", "/etc", "/tmp/x", "a..b", "", " a", "a b", "-x",
                                  "x" * 65, "ä", "a\x00"])
def test_names_that_are_not_plain_names_are_refused(tmp_path, name):
    with pytest.raises(BadSnapshot, match="snapshot names are"):
        snapshot_path(tmp_path, name, must_exist=False)


def test_symlinks_out_of_the_directory_are_refused(tmp_path):
    root, outside = tmp_path / "snapshots", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (outside / "memory.json").write_text("{}")
    os.symlink(outside, root / "escape")
    with pytest.raises(BadSnapshot, match="symbolic link"):
        snapshot_path(root, "escape", must_exist=False)
    inside = root / "mine"
    inside.mkdir()
    os.symlink(outside / "memory.json", inside / "memory.json")
    with pytest.raises(BadSnapshot, match="holds symbolic links"):
        snapshot_path(root, "mine", must_exist=True)
    assert list_snapshots(root) == ["mine"]  # listed (a plain directory), refused when loaded


def test_a_plain_snapshot_is_found_and_listed(tmp_path):
    (tmp_path / "monday" / "data").mkdir(parents=True)
    (tmp_path / "monday" / "memory.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    assert snapshot_path(tmp_path, "monday", must_exist=True) == tmp_path / "monday"
    with pytest.raises(BadSnapshot, match="no snapshot named 'empty'"):
        snapshot_path(tmp_path, "empty", must_exist=True)
    assert snapshot_path(tmp_path, "new-one_2", must_exist=False) == tmp_path / "new-one_2"
    assert list_snapshots(tmp_path) == ["monday"] and list_snapshots(tmp_path / "none") == []


def test_settings_are_checked_and_unknown_ones_refused():
    assert ConsoleConfig().host == "127.0.0.1" and ConsoleConfig().port == 8765 and ConsoleConfig().target == "/rns"
    for bad, says in [(dict(port=70000), "port"), (dict(token="short"), "token"), (dict(target="rns"), "target"),
                      (dict(fps=0.0), "fps"), (dict(host=" "), "host")]:
        with pytest.raises(ValueError, match=says):
            ConsoleConfig(**bad)
    with pytest.raises(ValueError, match="unknown parameter"):
        config_from_parameters({"prot": 1})
    with pytest.raises(ValueError, match="must be an integer"):
        config_from_parameters({"port": "8765"})
    assert config_from_parameters({"fps": 2}).fps == 2.0
