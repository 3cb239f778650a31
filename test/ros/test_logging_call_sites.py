"""rclpy refuses a logging call site whose severity changes between calls ("Logger severity cannot
be changed between calls", raised inside the callback that logs): every call site in the package
must log at one fixed severity."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rns_ros"
SEVERITY_NAMES = {"debug", "info", "warn", "warning", "error", "fatal", "log"}


def _names_a_logger_method(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return any(part in SEVERITY_NAMES for part in name.lower().split("_"))


def computed_severity_calls(tree: ast.AST):
    """Calls like `(log_info if ok else log_warning)(text)` and `logger.log(text, severity)`."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.IfExp) and (_names_a_logger_method(func.body) or _names_a_logger_method(func.orelse)):
            yield node.lineno
        if (isinstance(func, ast.Attribute) and func.attr == "log" and "log" in ast.unparse(func.value).lower()
                and len(node.args) + len(node.keywords) >= 2):  # logger.log(text, severity), not np.log(x, out)
            yield node.lineno


def test_no_logging_call_site_computes_its_severity():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             for line in computed_severity_calls(ast.parse(path.read_text()))]
    assert found == [], "log each severity from its own call site"


def test_the_check_finds_both_forms():
    code = "(self.log_info if ok else self.log_warning)(t)\nself.get_logger().log(t, level)\nlogger.info(t)\nnp.log(x, y)\n"
    assert list(computed_severity_calls(ast.parse(code))) == [1, 2]
