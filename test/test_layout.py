"""The house rules that keep the code readable (docs/core-api.md): no import circles anywhere in
rns_ros (a lazy import inside a function counts: it is still a circle), the engine never imports the
ROS glue or the harness, and every stage folder of the engine says its job in its docstring."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rns_ros"


def subpackages(folder: Path) -> tuple[str, ...]:
    """Every folder of `folder` that holds Python code (found, so a new room cannot slip past)."""
    return tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and any(d.glob("*.py"))))


STAGES = subpackages(PACKAGE / "core")
ROS_ROOMS = subpackages(PACKAGE / "ros")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(path: Path, known: dict[str, Path]) -> set[str]:
    """Every rns_ros module `path` imports, at any depth of its code (functions included). A
    `from pkg import name` counts as importing pkg.name where that is a module, else pkg."""
    found: set[str] = set()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rns_ros"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("rns_ros"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != this}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles_in_rns_ros():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_engine_imports_neither_ros_glue_nor_the_harness():
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if d.startswith(("rns_ros.ros", "rns_ros.eval")))
                 for m, deps in graph.items() if m.startswith("rns_ros.core")}
    assert not {m: d for m, d in offenders.items() if d}


def stated_job(folder: Path) -> str:
    """The docstring of `folder`'s __init__.py, which must say the folder's job and contract."""
    init = folder / "__init__.py"
    where = init.relative_to(ROOT)
    assert init.exists(), f"{where.parent}/ needs an __init__.py with its docstring"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.split()) >= 20, f"{where} must say the folder's job and contract"
    return doc


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_folder_is_a_package_that_states_its_job(stage):
    stated_job(PACKAGE / "core" / stage)


def test_the_method_stages_and_the_rooms_are_all_found():
    assert {"backbones", "regions", "memory", "adapter"} <= set(STAGES)
    assert {"inputs", "outputs", "depth", "teaching", "bags", "demo"} <= set(ROS_ROOMS)


@pytest.mark.parametrize("package", ["core", "ros"])
def test_the_package_map_names_every_folder_and_module(package):
    """rns_ros/core/__init__.py and rns_ros/ros/__init__.py each open with a map of the package: a
    folder or top-level module missing from it is one a newcomer will not find."""
    doc = stated_job(PACKAGE / package)
    folder = PACKAGE / package
    names = [f"{d}/" for d in subpackages(folder)] + [p.name for p in folder.glob("*.py") if p.name != "__init__.py"]
    missing = [n for n in names if n not in doc]
    assert not missing, f"rns_ros/{package}/__init__.py's map lacks {missing}"


def test_no_ros_glue_module_is_over_400_lines_and_the_node_only_wires():
    for path in sorted((PACKAGE / "ros").rglob("*.py")):
        lines = path.read_text().count("\n")
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines: split it by job"
    node = (PACKAGE / "ros" / "node.py").read_text()
    assert node.count("\n") <= 350, "ros/node.py wires the parts; move work into a part of its own"


@pytest.mark.parametrize("room", ROS_ROOMS)
def test_each_ros_room_is_a_package_that_states_its_job(room):
    doc = stated_job(PACKAGE / "ros" / room)
    for module in (PACKAGE / "ros" / room).glob("*.py"):
        assert module.name == "__init__.py" or module.stem in doc, f"{module.name} missing from {room}'s map"


def test_every_console_script_main_lives_in_rns_ros_cli():
    """One place for the entry points: pyproject's scripts and CMake's `ros2 run` executables all
    point into rns_ros.cli, one module per script, and each module is in the package's map."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    cmake = (ROOT / "CMakeLists.txt").read_text()
    cli_doc = ast.get_docstring(ast.parse((PACKAGE / "cli" / "__init__.py").read_text()))
    for script, target in scripts.items():
        module = target.split(":")[0]
        assert module.startswith("rns_ros.cli."), f"{script} -> {target}: its main belongs in rns_ros/cli/"
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert f"{script} " in cli_doc and module.rsplit(".", 1)[1] + ".py" in cli_doc, f"{script} not in cli's map"
    for entry in __import__("re").findall(r'"([\w-]+):(rns_ros[\w.]+)"', cmake):
        assert entry[1] == scripts[entry[0]].split(":")[0], f"CMakeLists.txt runs {entry} but pip {scripts[entry[0]]}"


def test_the_engine_holds_no_command_line():
    assert not (PACKAGE / "core" / "cli.py").exists()
    graph = import_graph()
    assert not [m for m, deps in graph.items() if m.startswith("rns_ros.core") and any(
        d.startswith("rns_ros.cli") for d in deps)]


def test_the_visual_package_stands_alone():
    """rns_ros.visual draws for the node, the CLI and the demo alike: it imports neither ROS nor the
    rest of rns_ros (numpy and Pillow only)."""
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if not d.startswith("rns_ros.visual"))
                 for m, deps in graph.items() if m.startswith("rns_ros.visual")}
    assert not {m: d for m, d in offenders.items() if d}
    for path in (PACKAGE / "visual").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in ("rclpy", "sensor_msgs", "std_msgs", "torch")], path


CONSOLE_MAY_USE = ("rns_ros.console", "rns_ros.ros.conversions", "rns_ros.ros.inputs.compressed")


def test_the_console_speaks_only_the_public_interface():
    """rns_ros.console is a separate node that teaches an rns node through its topics and services
    (possibly from another machine): it imports nothing of the engine or of the node's parts, only
    its own modules and the message conversions."""
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if d != "rns_ros" and not d.startswith(CONSOLE_MAY_USE))
                 for m, deps in graph.items() if m.startswith("rns_ros.console")}  # rns_ros: its msg/srv
    assert not {m: d for m, d in offenders.items() if d}
    assert any(m.startswith("rns_ros.console") for m in graph), "the console package is missing"


def test_importing_the_console_loads_neither_torch_nor_the_engine():
    import subprocess
    import sys

    code = ("import sys, rns_ros.console.app, rns_ros.console.server; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('rns_ros.core', 'rns_ros.eval')) "
            "or m in ('rns_ros.ros.node', 'rns_ros.ros.engine')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
