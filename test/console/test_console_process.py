"""`rns_console` as a process, as a user starts it: it prints the URL with the token, serves the
page to that URL only, refuses bad parameters and a taken port with the fix, and ends on SIGINT."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_console(tmp_path, *ros_args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "console.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", "import sys; from rns_ros.cli.console import main; "
                                 "sys.exit(main())", "--ros-args", *ros_args],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def test_it_prints_the_url_serves_it_and_stops_on_sigint(ros, tmp_path):
    proc, log = start_console(tmp_path, "-p", "port:=0", "-p", f"snapshot_dir:={tmp_path / 'snaps'}")
    try:
        url = ros.wait_for(lambda: proc.poll() is not None or re.search(r"open (http://\S+)", log.read_text()),
                           timeout=60, what="the URL")
        assert proc.poll() is None, log.read_text()
        url = url.group(1)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{40,}", url), url
        assert "teaching /rns" in log.read_text()
        request = urllib.request.Request(url.split("/?")[0] + "/api/status",
                                         headers={"authorization": f"Bearer {url.split('token=')[1]}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
    base = url.split("/?")[0]
    try:
        urllib.request.urlopen(base + "/api/status", timeout=5)
        raise AssertionError("the server still answers after SIGINT")
    except (urllib.error.URLError, ConnectionError):
        pass


def test_the_token_parameter_is_used_and_checked(ros, tmp_path):
    token = "a-fixed-token-of-the-robot-123"
    proc, log = start_console(tmp_path, "-p", "port:=0", "-p", f"token:={token}")
    try:
        url = ros.wait_for(lambda: proc.poll() is not None or re.search(r"open (http://\S+)", log.read_text()),
                           timeout=60, what="the URL")
        assert proc.poll() is None, log.read_text()
        base = url.group(1).split("/?")[0]
        assert url.group(1).endswith(f"?token={token}")
        request = urllib.request.Request(base + "/api/status", headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()


def test_bad_parameters_and_a_taken_port_are_refused_naming_the_fix(tmp_path):
    proc, log = start_console(tmp_path, "-p", "token:=short")
    assert proc.wait(timeout=60) == 2 and "token must be 16..128 characters" in log.read_text()
    proc, log = start_console(tmp_path, "-p", "prot:=1")
    assert proc.wait(timeout=60) == 2 and "unknown parameter(s) ['prot']" in log.read_text()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc, log = start_console(tmp_path, "-p", f"port:={port}")
        assert proc.wait(timeout=60) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text() and "-p port:=" in log.read_text()
