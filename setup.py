"""Install route A: `pip install --no-build-isolation .` into a venv holding the PyPI ROS wheels.

The metadata and every pin live in pyproject.toml; this file only adds the build step that the
interfaces need. `build_py` runs the package's own CMakeLists.txt (the same one `colcon build`
uses on a robot): configure against the venv's ament prefix, build, install into a staging
prefix. The result ships with the layout of the ROS wheels: the Python package (our sources
plus the generated `rns_ros.msg` / `rns_ros.srv` and their typesupport modules) in
site-packages, everything else (`lib/librns_ros__*.so`, `lib/rns_ros/rns_node`,
`share/rns_ros`, `share/ament_index`, `include/rns_ros`) under the venv root as data files.
The CMake build folder persists in build/, so a rebuild after a Python-only change takes seconds.

Needs cmake and a C/C++ compiler, and the build wheels listed in [build-system] already in the
environment (hence --no-build-isolation; scripts/setup.sh installs them first).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE = "rns_ros"


class BinaryDistribution(Distribution):
    """The wheel carries compiled typesupport libraries: tag it for this platform."""

    def has_ext_modules(self):
        return True


def _run(cmd, cwd, env):
    print("[rns_ros build] " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, check=True)


def _cmake_build_and_stage(build_dir: Path, stage_dir: Path) -> None:
    """Configure (once), build and install the CMake project into a fresh `stage_dir`."""
    if shutil.which("cmake") is None:
        raise RuntimeError("rns_ros needs `cmake` and a C/C++ compiler to build its ROS interfaces: "
                           "install them (Debian/Ubuntu: apt install cmake g++) and retry")
    env = dict(os.environ)
    # Typesupport discovery reads the ament index: point it (and CMake) at this environment.
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        p for p in (sys.prefix, os.environ.get("AMENT_PREFIX_PATH", "")) if p)
    env["CMAKE_PREFIX_PATH"] = os.pathsep.join(
        p for p in (sys.prefix, os.environ.get("CMAKE_PREFIX_PATH", "")) if p)
    build_dir.mkdir(parents=True, exist_ok=True)
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    _run(["cmake", ROOT, f"-DCMAKE_INSTALL_PREFIX={stage_dir}", f"-DPython3_EXECUTABLE={sys.executable}",
          "-DBUILD_TESTING=OFF"], build_dir, env)
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    _run(["cmake", "--build", ".", "--parallel", jobs], build_dir, env)
    _run(["cmake", "--install", "."], build_dir, env)


def _files_under(folder: Path):
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


class BuildWithInterfaces(build_py):
    """setuptools' build_py, plus the CMake build of the ROS interfaces."""

    def run(self):
        # pip builds in-tree and reuses build/: start the package from scratch so that a module
        # deleted from the sources is not shipped from an earlier build.
        shutil.rmtree(Path(self.build_lib) / PACKAGE, ignore_errors=True)
        super().run()
        build_temp = Path(self.get_finalized_command("build").build_temp).resolve()
        stage = build_temp / "rns_ros_stage"
        _cmake_build_and_stage(build_temp / "rns_ros_cmake", stage)

        site_packages = [p for p in stage.rglob(PACKAGE) if p.is_dir() and p.parent.name == "site-packages"]
        if len(site_packages) != 1:
            raise RuntimeError(f"expected one {PACKAGE}/ under site-packages in {stage}, found {site_packages}")
        staged_package = site_packages[0]
        # Python package: ours plus the generated msg/srv and typesupport extension modules.
        target = Path(self.build_lib) / PACKAGE
        for src in _files_under(staged_package):
            dst = target / src.relative_to(staged_package)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        # Everything else goes under the environment's prefix, like the ROS wheels do.
        data_files = {}
        for src in _files_under(stage):
            if "site-packages" in src.relative_to(stage).parts:
                continue
            rel_dir = src.parent.relative_to(stage).as_posix()
            data_files.setdefault(rel_dir, []).append(str(src))
        self.distribution.data_files = sorted(data_files.items())


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildWithInterfaces})
