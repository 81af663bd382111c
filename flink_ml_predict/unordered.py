"""ML_PREDICT with ``'output-mode' = 'ALLOW_UNORDERED'``: results in the order they arrive.

PyFlink's async scalar function (the ordered path, :mod:`flink_ml_predict.rewrite`) emits in input
order: one slow row holds back every row behind it, and the rows held count against
``max-concurrent-operations``, so fewer requests are in flight. PyFlink's DataStream API has an
unordered async operator (``AsyncDataStream.unordered_wait``), so an ALLOW_UNORDERED call is run
as:

    input table --to_data_stream--> unordered_wait(our AsyncFunction) --from_data_stream--> view

and the call's text is replaced by that temporary view: the statement stays one SQL statement
and the DataStream part runs in the statement's job. The AsyncFunction wraps the same
:class:`~flink_ml_predict.runtime.predictor.Predictor` as the scalar function: one output row per
result row (zero for a skipped or dropped input, n for n choices), all input columns then the
OUTPUT columns, the same FAILOVER / IGNORE behaviour and row budget.

Where it cannot apply, the call runs ordered (which ALLOW_UNORDERED permits) and the reason is
logged: a TableEnvironment that is not a ``StreamTableEnvironment``, an input that is not
insert-only (updates must stay in order, as in Flink's own ALLOW_UNORDERED), an input with a time
attribute (``from_data_stream`` would turn it into a plain TIMESTAMP), or a column type without a
DataStream type. The package's own ``create_table_environment`` makes a plain ``TableEnvironment``
(ordered): create a ``StreamTableEnvironment`` for unordered output (README "Unordered output").
Flink's SQL client cannot run Python DataStream operators at all, so the
SQL-client functions module (:mod:`flink_ml_predict.sqlclient`) always runs ordered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from pyflink.common import Row, Types
from pyflink.common.time import Time
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import AsyncDataStream, AsyncFunction, RuntimeContext
from pyflink.table import Schema
from pyflink.table import types as pt

from ._pyflink_compat import install_datastream_metrics_flush
from ._row_timeouts import install_shared_row_timeouts
from .datatypes import to_data_type
from .functions import open_predictor
from .model import CallSettings, ModelSpec
from .runtime.predictor import Predictor

install_datastream_metrics_flush()
install_shared_row_timeouts()
_LOGGER = logging.getLogger(__name__)
_COUNTER = itertools.count(1)

_ATOMIC: list[tuple[type, Any]] = [
    (pt.BooleanType, Types.BOOLEAN), (pt.TinyIntType, Types.BYTE),
    (pt.SmallIntType, Types.SHORT), (pt.IntType, Types.INT), (pt.BigIntType, Types.LONG),
    (pt.FloatType, Types.FLOAT), (pt.DoubleType, Types.DOUBLE), (pt.VarCharType, Types.STRING),
    (pt.CharType, Types.STRING), (pt.DecimalType, Types.BIG_DEC), (pt.DateType, Types.SQL_DATE),
    (pt.TimeType, Types.SQL_TIME), (pt.TimestampType, Types.SQL_TIMESTAMP),
    (pt.LocalZonedTimestampType, Types.INSTANT),
]
_BASIC = (pt.BooleanType, pt.TinyIntType, pt.SmallIntType, pt.IntType, pt.BigIntType,
          pt.FloatType, pt.DoubleType, pt.VarCharType, pt.CharType)


def type_info(data_type: Any) -> TypeInformation | None:
    """The DataStream TypeInformation that carries values of a table type (None: none does).

    DECIMAL, TIMESTAMP and string lengths lose their parameters here; the view's schema declares
    the exact table types again (see :func:`view_schema`).
    """
    for cls, info in _ATOMIC:
        if type(data_type) is cls:
            return info()
    if isinstance(data_type, (pt.BinaryType, pt.VarBinaryType)):
        return Types.PRIMITIVE_ARRAY(Types.BYTE())
    if isinstance(data_type, pt.ArrayType):
        element = type_info(data_type.element_type)
        if element is None:
            return None
        basic = isinstance(data_type.element_type, _BASIC)
        return Types.BASIC_ARRAY(element) if basic else Types.OBJECT_ARRAY(element)
    if isinstance(data_type, pt.MapType):
        key, value = type_info(data_type.key_type), type_info(data_type.value_type)
        return None if key is None or value is None else Types.MAP(key, value)
    if isinstance(data_type, pt.RowType):
        fields = [type_info(f.data_type) for f in data_type.fields]
        if any(f is None for f in fields):
            return None
        return Types.ROW_NAMED([f.name for f in data_type.fields], fields)
    return None


def view_schema(names: list[str], types: list[Any]) -> Any:
    """The Schema of the result view: the exact table types of every column."""
    builder = Schema.new_builder()
    for name, data_type in zip(names, types, strict=True):
        builder.column(name, data_type)
    return builder.build()


class UnorderedModelFunction(AsyncFunction):
    """The DataStream AsyncFunction of one ALLOW_UNORDERED call: input row -> input + outputs.

    Args:
        spec: the model.
        settings: the call's settings (row budget, concurrency).
        arguments: positions of the DESCRIPTOR columns in the input row.
    """

    def __init__(self, spec: ModelSpec, settings: CallSettings,
                 arguments: tuple[int, ...]) -> None:
        self.spec = spec
        self.settings = settings
        self.arguments = arguments
        self._predictor: Predictor | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self._predictor = open_predictor(self.spec, self.settings,
                                         runtime_context.get_metrics_group)

    def flush_metrics(self) -> None:
        """Reports pending metric updates; called on the bundle thread (_pyflink_compat)."""
        if self._predictor is not None:
            self._predictor.metrics.flush()

    async def async_invoke(self, value: Row) -> list[Row]:
        assert self._predictor is not None, "open() was not called"
        fields = tuple(value)
        results = await self._predictor.predict(*(fields[i] for i in self.arguments))
        return [Row(*fields, *cells) for cells in results]

    def close(self) -> None:
        predictor, self._predictor = self._predictor, None
        if predictor is not None:  # the loop is gone: close on a fresh one (see functions.py)
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(predictor.aclose())
            except Exception:  # noqa: BLE001 - sockets bound to the stopped loop; GC closes them
                _LOGGER.debug("closing the HTTP client of %s failed", self.spec.name,
                              exc_info=True)
            finally:
                loop.close()


def unsupported_reason(t_env: Any, names: list[str], types: list[Any]) -> str | None:
    """Why a call cannot run unordered on ``t_env`` with this input, or None when it can."""
    from pyflink.table import StreamTableEnvironment

    if not isinstance(t_env, StreamTableEnvironment):
        return "the TableEnvironment is not a StreamTableEnvironment"
    for name, data_type in zip(names, types, strict=True):
        java = str(data_type._j_data_type) if hasattr(data_type, "_j_data_type") else ""
        if "*ROWTIME*" in java or "*PROCTIME*" in java:
            return f"column '{name}' is a time attribute"
        if type_info(data_type) is None:
            return f"column '{name}' has type {data_type}, which has no DataStream type"
    return None


def register_unordered_view(t_env: Any, spec: ModelSpec, settings: CallSettings, source: str,
                            names: list[str], types: list[Any], columns: tuple[str, ...],
                            where: str) -> str | None:
    """Registers the results of one ML_PREDICT call, in arrival order, as a temporary view.

    Args:
        t_env: a StreamTableEnvironment.
        spec: the model.
        settings: the call's settings.
        source: the input as it may follow FROM (a table name or a parenthesised query).
        names: the input's column names.
        types: the input's column DataTypes.
        columns: the DESCRIPTOR columns.
        where: the statement, for messages.

    Returns:
        The view's name, or None when the call must run ordered (the reason is logged).
    """
    reason = unsupported_reason(t_env, names, types)
    table = None
    if reason is None:
        table = t_env.sql_query(f"SELECT * FROM {source}")
        try:
            stream = t_env.to_data_stream(table)
        except Exception as exc:  # noqa: BLE001 - py4j: an updating (changelog) input
            reason = f"the input is not insert-only ({str(exc).strip().splitlines()[0][:200]})"
    if reason is not None:
        _LOGGER.info("%s: ML_PREDICT with model %s: output-mode ALLOW_UNORDERED runs ordered: %s",
                     where, spec.name, reason)
        return None
    outputs = [(c.name, to_data_type(c.type)) for c in spec.outputs.columns]
    all_names = [*names, *(n for n, _ in outputs)]
    all_types = [*types, *(t for _, t in outputs)]
    row_type = Types.ROW_NAMED(all_names, [type_info(t) for t in all_types])
    function = UnorderedModelFunction(spec, settings,
                                      tuple(names.index(c) for c in columns))
    result = AsyncDataStream.unordered_wait(
        stream, function, Time.milliseconds(int(settings.timeout * 1000)),
        settings.max_concurrent, row_type)
    view = f"__mlp_unordered_{next(_COUNTER)}"
    t_env.create_temporary_view(view, t_env.from_data_stream(
        result, view_schema(all_names, all_types)))
    _LOGGER.info("%s: ML_PREDICT with model %s: output-mode ALLOW_UNORDERED (DataStream "
                 "unordered_wait, capacity %d)", where, spec.name, settings.max_concurrent)
    return view


__all__ = ["UnorderedModelFunction", "register_unordered_view", "type_info",
           "unsupported_reason"]
