"""The Flink Python functions that run a model: open() / eval() / close().

Each ML_PREDICT call site becomes one temporary function returning ``ARRAY<ROW<outputs>>`` (zero
rows for a skipped or dropped input, n rows for n choices), which the rewritten query expands with
``CROSS JOIN UNNEST``. The function captures only the picklable :class:`ModelSpec` and
:class:`CallSettings`; the HTTP client, token counter and metrics are created in the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.types import DataType
from pyflink.table.udf import AsyncScalarFunction, FunctionContext, ScalarFunction, udf

from ._pyflink_compat import install_async_row_copy_guard
from ._row_timeouts import install_shared_row_timeouts
from .datatypes import to_data_type
from .model import CallSettings, ModelSpec
from .runtime.metrics import Metrics
from .runtime.predictor import Predictor
from .runtime.watchdog import start_if_process_worker

install_async_row_copy_guard()
install_shared_row_timeouts()
_LOGGER = logging.getLogger(__name__)


def result_type(spec: ModelSpec) -> DataType:
    """ARRAY<ROW<...>> with one field per OUTPUT column, in declared order."""
    return DataTypes.ARRAY(DataTypes.ROW(
        [DataTypes.FIELD(c.name, to_data_type(c.type)) for c in spec.outputs.columns]))


def input_types(spec: ModelSpec) -> list[DataType]:
    """The argument types of the function: one per INPUT column."""
    return [to_data_type(c.type) for c in spec.inputs]


def open_predictor(spec: ModelSpec, settings: CallSettings,
                   metric_group: Callable[[], Any]) -> Predictor:
    """What every model function does when it opens in a worker: the orphan watchdog, quiet HTTP
    loggers, and the predictor with its metrics (none when Flink's Python metrics are off)."""
    start_if_process_worker()  # a worker orphaned by a lost TaskManager exits
    for name in ("httpx", "httpx2"):  # one INFO line per request would flood worker logs
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        group = metric_group()
    except Exception:  # noqa: BLE001 - metrics disabled ('python.metric.enabled' = false)
        group = None
    return Predictor(spec, settings, metrics=Metrics(group, spec.name))


class _ModelFunction:
    """What the async and the sync function share: the predictor's life cycle."""

    def __init__(self, spec: ModelSpec, settings: CallSettings) -> None:
        self.spec = spec
        self.settings = settings
        self._predictor: Predictor | None = None

    def open(self, function_context: FunctionContext) -> None:
        self._predictor = open_predictor(self.spec, self.settings,
                                         function_context.get_metric_group)

    def flush_metrics(self) -> None:
        """Reports pending metric updates; called on the bundle thread."""
        if self._predictor is not None:
            self._predictor.metrics.flush()

    def is_deterministic(self) -> bool:
        # A model call is not deterministic: the planner must neither fold nor duplicate it.
        return False

    def _rows(self, results: list[tuple[Any, ...]]) -> list[Row]:
        return [Row(*cells) for cells in results]


class AsyncModelFunction(_ModelFunction, AsyncScalarFunction):
    """Async scalar function: many rows in flight, bounded by Flink's operator capacity."""

    async def eval(self, *values: Any) -> list[Row]:
        predictor = self._predictor
        assert predictor is not None, "open() was not called"
        rows = self._rows(await predictor.predict(*values))
        predictor.metrics.inc("rows")
        return rows

    def close(self) -> None:
        # PyFlink stops its event loop before close(); release the connection pool on a fresh
        # loop, so restarts in a long-lived worker process do not pile up pools.
        predictor, self._predictor = self._predictor, None
        if predictor is not None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(predictor.aclose())
            except Exception:  # noqa: BLE001 - sockets bound to the stopped loop; GC closes them
                _LOGGER.debug("closing the HTTP client of %s failed", self.spec.name, exc_info=True)
            finally:
                loop.close()


class SyncModelFunction(_ModelFunction, ScalarFunction):
    """Synchronous scalar function for CONFIG 'async' = 'false': one request at a time."""

    def open(self, function_context: FunctionContext) -> None:
        super().open(function_context)
        self._loop = asyncio.new_event_loop()

    def eval(self, *values: Any) -> list[Row]:
        assert self._predictor is not None, "open() was not called"
        rows = self._rows(self._loop.run_until_complete(self._predictor.predict(*values)))
        self._predictor.metrics.inc("rows")
        self.flush_metrics()  # eval runs on the bundle thread: report right away
        return rows

    def close(self) -> None:
        if self._predictor is not None:
            self._loop.run_until_complete(self._predictor.aclose())
            self._loop.close()
        self._predictor = None


def make_udf(spec: ModelSpec, settings: CallSettings) -> Any:
    """The PyFlink user-defined function for one ML_PREDICT call site."""
    cls = AsyncModelFunction if settings.asynchronous else SyncModelFunction
    return udf(cls(spec, settings), input_types=input_types(spec),
               result_type=result_type(spec), deterministic=False)
