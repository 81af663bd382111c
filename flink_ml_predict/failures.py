"""What went wrong, in one line: Flink's and PyFlink's exception texts reduced to their message,
and what a user can do about a failed model call.

A failed statement or job reaches Python as one py4j exception whose text is a Java stack trace,
often with a Python traceback from the worker inside it. :func:`flink_message` finds the message in
it, :func:`python_error` our own failure (a ``ModelCallError`` raised in the worker), and
:func:`advice` adds what to do for an HTTP status or a connection problem. The full text belongs in
a log file, not on the console.
"""

from __future__ import annotations

import ast
import re

__all__ = ["advice", "flink_message", "input_row", "python_error"]

_PY4J_HEADER = re.compile(r"^An error occurred while calling [\w.]+\.?$")
# A Java class name before its message: 'org.apache.flink.table.api.ValidationException: '.
_JAVA_CLASS = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*: ")
_TRACEBACK = "Traceback (most recent call last):"
_PYTHON_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)(?::\s*(.*))?$")
_EXCEPTION_NAMES = ("Error", "Exception", "Exit", "Interrupt", "Warning")
# PyFlink's async operation wraps a failure with the row it was handling: the row stays out.
_WRAPPED = re.compile(r"^\([\"']Error happens inside the class '\w+' during handling input "
                      r"'.*'[\"'], (.+)\)$")
_OUR_FAILURE = re.compile(r"\w*(?:ModelCallError|AnswerFormatError)(?::\s*(.+)$|"
                          r"\((?P<repr>'.*'|\".*\")\)+$)")
_INPUT = re.compile(r"during handling input '(.*?)'[\"'], \w+\(")
_FRAME = re.compile(r'^File "([^"]+)", line (\d+), in (.+)$')


def _strip_class(line: str) -> str:
    """A Java exception line without its class names ('a.b.XException: c.d.Y: msg' -> 'msg')."""
    while _JAVA_CLASS.match(line):
        line = _JAVA_CLASS.sub("", line, count=1)
    return line


def _python_traceback_error(lines: list[str]) -> str | None:
    """The exception line of the last Python traceback in the text, with its innermost frame."""
    starts = [i for i, line in enumerate(lines) if line.endswith(_TRACEBACK)]
    if not starts:
        return None
    frame = None
    for line in lines[starts[-1] + 1:]:
        found = _FRAME.match(line)
        if found:
            frame = found
            continue
        match = _PYTHON_EXCEPTION.match(line)
        if match and match.group(1).endswith(_EXCEPTION_NAMES):
            where = (f" (at {_short_file(frame)}, line {frame.group(2)}, in {frame.group(3)})"
                     if frame else "")
            detail = match.group(2) or ""
            wrapped = _WRAPPED.match(detail)
            if wrapped:
                return f"Python error in the worker: {wrapped.group(1)}{where}"
            return f"Python error in the worker: {match.group(1)}{': ' if detail else ''}" \
                f"{detail}{where}"
    return None


def _short_file(frame: re.Match[str]) -> str:
    """The file of a traceback frame, as its last two path parts."""
    return "/".join(frame.group(1).split("/")[-2:])


def flink_message(exc: BaseException) -> str:
    """The useful line of a py4j/Java exception.

    A Python traceback inside it (a Python function failed in the worker) gives its exception
    line; otherwise the deepest 'Caused by', else the Java exception's own message, without
    py4j's 'An error occurred while calling o8.executeSql.' and without Java class names.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    python = _python_traceback_error(lines)
    if python is not None:
        return python
    causes = [line[len("Caused by:"):].strip() for line in lines if line.startswith("Caused by:")]
    if causes:
        return _strip_class(causes[-1])
    for line in lines:
        if _PY4J_HEADER.match(line) or line.startswith("at "):
            continue
        return _strip_class(line[2:] if line.startswith(": ") else line)
    return lines[0] if lines else type(exc).__name__


def python_error(exc: BaseException) -> str | None:
    """Our own failure message inside a failed job's trace (raised in the Python worker), if any:
    from ``Error: message`` or the repr ``Error('message')``, whose quotes are undone."""
    for line in reversed(str(exc).splitlines()):
        match = _OUR_FAILURE.search(line.strip())
        if match and match.group("repr"):
            try:
                return str(ast.literal_eval(match.group("repr")))
            except (ValueError, SyntaxError):
                return match.group("repr")[1:-1]
        if match:
            return match.group(1)
    return None


def input_row(exc: BaseException) -> str | None:
    """The input row PyFlink names in a failed job's trace ('during handling input ...')."""
    for line in reversed(str(exc).splitlines()):
        match = _INPUT.search(line)
        if match:
            return match.group(1)
    return None


_STATUS_ADVICE = {
    400: "the service rejected the request: check the model's options ('model', the request "
         "options such as 'max-tokens' or 'response-format') against the service's documentation",
    401: "the service did not accept the api-key: check 'api-key' (and that the key belongs to "
         "this endpoint's service and region)",
    403: "the api-key may not use this model or endpoint: check the account's access to 'model'",
    404: "nothing answers at that URL, or the service has no such model: check 'endpoint' (a base "
         "URL, or one ending in /chat/completions or /embeddings) and 'model'",
    408: "the service timed out: try again later, or raise 'retry-num'",
    413: "the request is too large: lower 'max-context-size' or 'max-tokens'",
    429: "the service is rate-limiting or out of quota: lower ML_PREDICT's "
         "'max-concurrent-operations', raise 'retry-num', or check the account's quota",
}
_SERVER_ADVICE = ("the service failed: try again later; 'error-handling-strategy' = 'IGNORE' "
                  "keeps a job running past failed rows")
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_OTHER_ADVICE = (
    ("connection error", "the endpoint could not be reached: check its host and port, and any "
                         "proxy or firewall between this machine (or the TaskManagers) and it"),
    ("timed out", "no answer in time: raise 'request-timeout' (one request) or ML_PREDICT's "
                  "'timeout' (all attempts of a row)"),
    ("malformed response", "the endpoint did not answer like an OpenAI-compatible API: check "
                           "'endpoint'"),
)


def advice(message: str) -> str | None:
    """What to do about a failed model call, from its message (HTTP status or failure kind)."""
    status = _HTTP_STATUS.search(message)
    if status is not None:
        code = int(status.group(1))
        return _STATUS_ADVICE.get(code, _SERVER_ADVICE if code >= 500 else None)
    for marker, text in _OTHER_ADVICE:
        if marker in message:
            return text
    return None
