"""CallbackGuard: an exception inside a callback is counted, logged (throttled per callback) and
answered with the fallback, never raised into the executor."""
from rcl_interfaces.msg import SetParametersResult

from rns_ros.ros.guard import CallbackGuard, failed_response
from rns_ros.srv import ListClasses


def boom(*args):
    raise KeyError("boom")


def test_a_raising_service_answers_success_false_and_is_counted():
    logged = []
    guard = CallbackGuard(logged.append)
    handler = guard.wrap("~/list_classes", boom, failed_response)
    response = handler(ListClasses.Request(), ListClasses.Response())
    assert isinstance(response, ListClasses.Response)
    assert response.success is False and response.message == "internal error: KeyError('boom')"
    assert guard.errors == 1 and guard.last_error == "~/list_classes: KeyError('boom')"
    assert len(logged) == 1 and "~/list_classes" in logged[0] and "Traceback" in logged[0]


def test_logs_are_throttled_per_callback_but_every_error_is_counted():
    logged = []
    guard = CallbackGuard(logged.append)
    image, timer = guard.wrap("image", boom), guard.wrap("diagnostics", boom)
    for _ in range(5):
        assert image(object()) is None
    timer()
    assert guard.errors == 6 and len(logged) == 2  # one per callback within the second


def test_a_broken_logger_does_not_undo_the_guard_and_fallbacks_get_the_error():
    def broken_log(text):
        raise ValueError("Logger severity cannot be changed between calls.")

    guard = CallbackGuard(broken_log)
    wrapped = guard.wrap("parameters", boom, lambda params, exc: SetParametersResult(successful=False, reason=repr(exc)))
    result = wrapped([])
    assert result.successful is False and "boom" in result.reason and guard.errors == 1
    assert guard.wrap("ok", lambda x: x + 1)(1) == 2 and guard.errors == 1
