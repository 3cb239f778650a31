"""Install route B: `colcon build` of this tree, as on a robot with apt ROS (here the ament tools
and message packages come from the PyPI wheels in the venv, which stands in for /opt/ros/jazzy).

The workspace lives in build/colcon_test_ws (git-ignored) and is kept between runs, so later runs
are incremental (make rebuilds what changed; the sources are copied with their mtimes). The first
build compiles every typesupport library and takes minutes on 2 busy cores.
Set RNS_COLCON_FRESH=1 to start from an empty workspace.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WS = ROOT / "build" / "colcon_test_ws"
# interfaces/ is copied too (as a clone of the repository would hold it): the vision_msgs stand-in
# inside must stay invisible to colcon, which stops descending at our package root.
PACKAGE_FILES = ["package.xml", "CMakeLists.txt", "msg", "srv", "rns_ros", "launch", "config", "rviz", "interfaces"]


def _sync_sources(dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore)  # copy2: mtimes kept, so make stays incremental
        else:
            shutil.copy2(src, dst / name)


@pytest.fixture(scope="module")
def colcon_install():
    if os.environ.get("RNS_COLCON_FRESH") == "1" and WS.exists():
        shutil.rmtree(WS)
    _sync_sources(WS / "src" / "rns_ros")
    venv_bin = str(Path(sys.executable).parent)
    # What `source .venv/bin/activate` does, plus the ament prefix that /opt/ros/jazzy's setup gives.
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix, PATH=venv_bin + os.pathsep + os.environ["PATH"],
               AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix,
               MAKEFLAGS=f"-j{os.cpu_count() or 1}")
    env.pop("PYTHONPATH", None)
    out = subprocess.run([str(Path(venv_bin) / "colcon"), "build", "--event-handlers", "console_direct-"],
                         cwd=WS, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return WS / "install"


def _in_workspace(install: Path, code: str) -> subprocess.CompletedProcess:
    """Run Python code after `source install/setup.bash`, away from the source tree."""
    script = f'source "{install}/setup.bash" && exec "{sys.executable}" -c "$RNS_CODE"'
    env = dict(os.environ, RNS_CODE=code)
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", "-c", script], cwd=install.parent, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_colcon_build_installs_node_interfaces_and_share(colcon_install):
    pkg = colcon_install / "rns_ros"
    for rel in ["lib/rns_ros/rns_node", "lib/rns_ros/rns_image_folder_camera", "lib/rns_ros/rns-bag",
                "lib/rns_ros/rns_console"]:
        assert os.access(pkg / rel, os.X_OK), rel
    for rel in ["share/rns_ros/launch/rns.launch.py", "share/rns_ros/config/rns.yaml", "share/rns_ros/rviz/rns.rviz",
                "share/rns_ros/package.xml", "share/ament_index/resource_index/packages/rns_ros"]:
        assert (pkg / rel).is_file(), rel
    assert list(pkg.glob("lib/python3*/site-packages/rns_ros/core/adapter/native/subspace_steps.c")), \
        "the fast adapter's kernel source is not installed"


@pytest.mark.slow
def test_colcon_builds_only_rns_ros_not_the_nested_vision_msgs_stand_in(colcon_install):
    assert (WS / "src" / "rns_ros" / "interfaces" / "vision_msgs" / "package.xml").is_file()
    built = sorted(p.name for p in colcon_install.iterdir() if p.is_dir())
    assert built == ["rns_ros"], built


@pytest.mark.slow
def test_colcon_built_node_imports_its_interfaces(colcon_install):
    code = (
        "import rns_ros.msg, rns_ros.srv, rns_ros.ros.node as node, rns_ros.ros.outputs.class_map as outputs\n"
        "from ament_index_python.packages import get_package_share_directory as share\n"
        "assert outputs.ClassMap is rns_ros.msg.ClassMap\n"
        "from rns_ros.srv import AddClasses\n"
        "print(rns_ros.msg.__file__); print(node.__file__); print(share('rns_ros'))\n")
    out = _in_workspace(colcon_install, code)
    assert out.returncode == 0, out.stderr[-4000:]
    msg_file, node_file, share = out.stdout.split()
    site = colcon_install / "rns_ros" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert Path(msg_file).is_relative_to(site) and Path(node_file).is_relative_to(site)
    assert Path(share) == colcon_install / "rns_ros" / "share" / "rns_ros"
