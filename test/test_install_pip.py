"""Install route A: `pip install --no-build-isolation .` (run by scripts/setup.sh) built the ROS
interfaces with CMake and installed everything where ROS tools and users look for it.

These tests inspect the installed copy in this venv: run scripts/setup.sh (or scripts/test.sh)
after changing package sources.
"""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = Path(sys.prefix)
SITE = PREFIX / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
STALE = "the installed rns_ros is older than the sources: run scripts/setup.sh"


@pytest.mark.parametrize("script", ["rns_node", "rns_image_folder_camera", "rns-demo", "rns-bag", "rns_console"])
def test_console_scripts_are_in_the_venv_bin(script):
    path = PREFIX / "bin" / script
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing: {STALE}"


@pytest.mark.parametrize("executable", ["rns_node", "rns_image_folder_camera", "rns-bag", "rns_console"])
def test_ros2_run_executables_are_in_lib_rns_ros_and_run_this_python(executable):
    path = PREFIX / "lib" / "rns_ros" / executable
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing: {STALE}"
    shebang = path.read_text().splitlines()[0]
    assert Path(shebang[2:]).resolve() == Path(sys.executable).resolve()


def test_ament_index_and_share_hold_the_package_files():
    assert (PREFIX / "share" / "ament_index" / "resource_index" / "packages" / "rns_ros").is_file()
    from ament_index_python.packages import get_package_share_directory

    env_before = os.environ.get("AMENT_PREFIX_PATH")
    os.environ["AMENT_PREFIX_PATH"] = sys.prefix
    try:
        share = Path(get_package_share_directory("rns_ros"))
    finally:
        if env_before is None:
            del os.environ["AMENT_PREFIX_PATH"]
        else:
            os.environ["AMENT_PREFIX_PATH"] = env_before
    assert share == PREFIX / "share" / "rns_ros"
    for rel in ["package.xml", "launch/rns.launch.py", "config/rns.yaml", "rviz/rns.rviz",
                "msg/ClassInfo.msg", "msg/ClassMap.msg", "srv/AddExemplar.srv", "srv/Segment.srv"]:
        assert (share / rel).is_file(), f"{rel} not installed: {STALE}"
        assert filecmp.cmp(share / rel, ROOT / rel, shallow=False), f"{rel}: {STALE}"
    assert sorted(p.name for p in (share / "srv").glob("*.srv")) == sorted(p.name for p in (ROOT / "srv").glob("*.srv"))
    assert any((PREFIX / "lib").glob("librns_ros__rosidl_typesupport_c.so"))


def test_installed_package_imports_its_interfaces_outside_the_source_tree(tmp_path):
    """A fresh interpreter, away from the checkout: the generated msg/srv live next to our code."""
    code = (
        "import rns_ros, rns_ros.msg, rns_ros.srv, rns_ros.ros.conversions\n"
        "from rclpy.serialization import serialize_message, deserialize_message\n"
        "from rns_ros.msg import ClassMap, ClassInfo\n"
        "m = ClassMap(support_version=7, classes=[ClassInfo(id=300, name='mug', exemplar_ids=[4, 9])])\n"
        "back = deserialize_message(serialize_message(m), ClassMap)\n"
        "assert back.support_version == 7 and back.classes[0].name == 'mug' and list(back.classes[0].exemplar_ids) == [4, 9]\n"
        "from rns_ros.srv import AddClasses, AddExemplar, Segment\n"
        "assert hasattr(AddExemplar.Request(), 'mask') and hasattr(Segment.Response(), 'labels')\n"
        "print(rns_ros.__file__)\n")
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix)
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).parent == SITE / "rns_ros"


def test_installed_package_ships_the_adapter_kernel_source():
    """The fast adapter compiles native/subspace_steps.c on first use: it must be installed."""
    installed = SITE / "rns_ros" / "core" / "adapter" / "native" / "subspace_steps.c"
    assert installed.is_file(), f"{installed} missing: {STALE}"
    assert filecmp.cmp(installed, ROOT / "rns_ros" / "core" / "adapter" / "native" / "subspace_steps.c", shallow=False), STALE


def test_the_console_page_is_installed_with_the_package():
    static = SITE / "rns_ros" / "console" / "static"
    for name in ("index.html", "console.js", "console.css"):
        assert (static / name).is_file(), f"{static / name} missing: {STALE}"
        assert filecmp.cmp(static / name, ROOT / "rns_ros" / "console" / "static" / name, shallow=False), STALE
