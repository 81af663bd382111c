"""One line from PyFlink's exception texts, and what to do about a failed model call.

The texts are PyFlink 2.3's own (recorded from real runs, stack frames shortened)."""

from __future__ import annotations

from flink_ml_predict.failures import advice, flink_message, input_row, python_error
from flink_ml_predict.runner import flink_message as runner_flink_message

JAVA_FRAMES = ("\tat org.apache.flink.table.catalog.CatalogManager.getTableOrError"
               "(CatalogManager.java:760)\n\tat java.base/java.lang.Thread.run(Thread.java:840)\n")

MISSING_TABLE = (
    "An error occurred while calling o8.executeSql.\n"
    ": org.apache.flink.table.api.ValidationException: Cannot find table "
    "'`default_catalog`.`otherdb`.`sink`' in any of the catalogs [default_catalog], nor as a "
    "temporary table.\n" + JAVA_FRAMES)

UNKNOWN_OBJECT = (
    "An error occurred while calling o8.executeSql.\n"
    ": org.apache.flink.table.api.ValidationException: SQL validation failed. From line 1, "
    "column 15 to line 1, column 20: Object 'nosuch' not found\n" + JAVA_FRAMES
    + "Caused by: org.apache.calcite.runtime.CalciteContextException: From line 1, column 15 to "
    "line 1, column 20: Object 'nosuch' not found\n" + JAVA_FRAMES)

_HARNESS = (
    "An error occurred while calling o77.await.\n"
    ": java.util.concurrent.ExecutionException: org.apache.flink.table.api.TableException: "
    "Failed to wait job finish\n" + JAVA_FRAMES
    + "Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by "
    "NoRestartBackoffTimeStrategy\n" + JAVA_FRAMES
    + "Caused by: java.lang.RuntimeException: Error received from SDK harness for instruction 1: "
    "Traceback (most recent call last):\n"
    '  File "/venv/lib/python3.11/site-packages/apache_beam/runners/worker/sdk_worker.py", '
    "line 311, in _execute\n    response = task()\n               ^^^^^^\n")

USER_BUG = _HARNESS + (
    '  File "/venv/lib/python3.11/site-packages/pyflink/fn_execution/table/operations.py", '
    "line 114, in process_element\n    return self.func(value)\n"
    '  File "/home/me/jobs/job.py", line 8, in bad\n    return {}["missing"]\n'
    "           ~~^^^^^^^^^^^\nKeyError: 'missing'\n\n" + JAVA_FRAMES)

MODEL_FAILURE = _HARNESS + (
    '  File "/venv/lib/python3.11/site-packages/pyflink/fn_execution/table/async_function/'
    'operations.py", line 225, in _raise_exception_if_exists\n    raise self._exception\n'
    "Exception: (\"Error happens inside the class 'AsyncScalarFunctionOperation' during handling "
    "input '['private text']'\", PermanentModelCallError('ML_PREDICT with model m failed "
    "(error-handling-strategy RETRY): HTTP 401: invalid_api_key: Incorrect API key provided. "
    "(POST http://127.0.0.1:8000/v1/chat/completions)'))\n\n" + JAVA_FRAMES)

OTHER_ASYNC_FAILURE = MODEL_FAILURE.replace(
    "PermanentModelCallError('ML_PREDICT with model m failed (error-handling-strategy RETRY): "
    "HTTP 401: invalid_api_key: Incorrect API key provided. "
    "(POST http://127.0.0.1:8000/v1/chat/completions)')", "KeyError('choices')")


def test_a_rejected_statement_gives_flinks_message_not_py4js() -> None:
    assert flink_message(Exception(MISSING_TABLE)) == (
        "Cannot find table '`default_catalog`.`otherdb`.`sink`' in any of the catalogs "
        "[default_catalog], nor as a temporary table.")
    assert flink_message(Exception(UNKNOWN_OBJECT)) == (
        "From line 1, column 15 to line 1, column 20: Object 'nosuch' not found")
    assert runner_flink_message is flink_message


def test_a_python_failure_in_the_worker_gives_its_exception_line() -> None:
    assert flink_message(Exception(USER_BUG)) == (
        "Python error in the worker: KeyError: 'missing' (at jobs/job.py, line 8, in bad)")
    assert python_error(Exception(USER_BUG)) is None


def test_the_row_being_handled_stays_out_of_the_message() -> None:
    message = flink_message(Exception(OTHER_ASYNC_FAILURE))
    assert message.startswith("Python error in the worker: KeyError('choices')"), message
    assert "private text" not in message
    assert input_row(Exception(OTHER_ASYNC_FAILURE)) == "['private text']"


def test_our_failure_is_found_in_the_trace() -> None:
    assert python_error(Exception(MODEL_FAILURE)) == (
        "ML_PREDICT with model m failed (error-handling-strategy RETRY): HTTP 401: "
        "invalid_api_key: Incorrect API key provided. "
        "(POST http://127.0.0.1:8000/v1/chat/completions)")


def test_advice_by_status_and_failure_kind() -> None:
    assert advice("... HTTP 401: invalid_api_key").startswith(
        "the service did not accept the api-key: check 'api-key'")
    assert "check 'endpoint'" in advice("HTTP 404: Not Found (POST http://h/v1/x)")
    assert "'max-concurrent-operations'" in advice("HTTP 429: rate limited")
    assert advice("HTTP 503: busy").startswith("the service failed: try again later")
    assert advice("connection error (ConnectError: refused) (POST http://h/v1)").startswith(
        "the endpoint could not be reached")
    assert "'request-timeout'" in advice("request timed out")
    assert advice("HTTP 418: teapot") is None
    assert advice("structured answer does not fit") is None
