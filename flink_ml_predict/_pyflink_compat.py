"""Guards against known PyFlink defects; installed when the Flink worker imports our functions.

FLINK-39532 (PyFlink 2.3.0): ``AsyncScalarFunctionOperation.process_element`` hands the input
row to a coroutine that reads it later, but the Cython row decoder reuses one list for every row,
so a slow call can read a later row's arguments (measured: 877 of 1,000 rows answered with
another row's result). Copying the row before it is queued fixes it. The worker binds
``operation.process_element`` right after constructing the operation, and constructing it
unpickles our function (importing this module), so patching the class here is in time.
The same patch reports our functions' metrics from the bundle thread, the only thread whose
metric updates Beam keeps.
"""

from __future__ import annotations

import logging
from typing import Any

_LOGGER = logging.getLogger(__name__)
_MARK = "_flink_ml_predict_row_copy"


def _flush_metrics(operation: Any) -> None:
    """Reports the pending metric updates of this operation's own functions (see
    runtime/metrics.py: Beam only takes updates made on the bundle thread)."""
    for function in getattr(operation, "user_defined_funcs", ()):
        flush = getattr(function, "flush_metrics", None)
        if flush is not None:
            flush()


def install_async_row_copy_guard() -> bool:
    """Makes the async scalar operation copy each input row; returns True once installed."""
    try:
        from pyflink.fn_execution.table.async_function import operations
    except ImportError:  # a PyFlink without async scalar functions
        return False
    cls = operations.AsyncScalarFunctionOperation
    original = cls.process_element
    if getattr(original, _MARK, False):
        return True
    original_finish = cls.finish

    def process_element(self: Any, value: Any) -> Any:
        _flush_metrics(self)  # of the calls finished so far, on this (bundle) thread
        return original(self, list(value))

    def finish(self: Any) -> Any:
        result = original_finish(self)  # waits for the calls in flight
        _flush_metrics(self)
        return result

    setattr(process_element, _MARK, True)
    process_element.__doc__ = original.__doc__
    cls.process_element = process_element
    cls.finish = finish
    _LOGGER.debug("installed the FLINK-39532 row-copy guard")
    return True


def install_datastream_metrics_flush() -> bool:
    """Flushes the metrics of our DataStream ``AsyncFunction`` (the unordered path) on the bundle
    thread, as the row-copy guard does for the scalar function; returns True once installed.
    Its rows are not reused by a decoder, so they are not copied."""
    try:
        from pyflink.fn_execution.datastream.process.async_function import operation
    except ImportError:  # a PyFlink without DataStream async functions
        return False
    cls = operation.AsyncOperation
    original = cls.process_element
    if getattr(original, _MARK, False):
        return True
    original_finish = cls.finish

    def flush(self: Any) -> None:
        owner = getattr(getattr(self, "async_invoke_func", None), "__self__", None)
        flush_metrics = getattr(owner, "flush_metrics", None)
        if flush_metrics is not None:
            flush_metrics()

    def process_element(self: Any, windowed_value: Any, element: Any) -> Any:
        flush(self)
        return original(self, windowed_value, element)

    def finish(self: Any) -> Any:
        result = original_finish(self)  # waits for the calls in flight
        flush(self)
        return result

    setattr(process_element, _MARK, True)
    process_element.__doc__ = original.__doc__
    cls.process_element = process_element
    cls.finish = finish
    return True
