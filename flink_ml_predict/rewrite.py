"""Turns ML_PREDICT calls into SQL that Flink executes with our Python functions.

``ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(c) [, CONFIG])`` becomes::

    (SELECT __in.<every column of t>, __out.<every OUTPUT column of m>
     FROM (SELECT *, <fn>(c) AS __result FROM t) AS __in
     CROSS JOIN UNNEST(__in.__result) AS __out(<OUTPUT columns>))

where ``<fn>`` is a temporary system function registered for this call site (an async scalar
function returning ``ARRAY<ROW<outputs>>``). UNNEST gives ML_PREDICT's table-function semantics:
n rows for n choices, no row for a skipped or dropped input. Only the call's span of text is
replaced; the rest of the statement reaches Flink untouched.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import options as opts
from .errors import PredictCallError
from .model import ORDERED_QUEUE_FACTOR, CallSettings, ModelSpec
from .registry import ModelRegistry, unknown_model
from .sqltext import PredictCall, find_predict_calls
from .sqltext import quote_identifier as quote

_LOGGER = logging.getLogger(__name__)

# Flink's ML_PREDICT CONFIG keys and the table options that give their defaults.
CONFIG_KEYS = ("async", "max-concurrent-operations", "output-mode", "timeout")
DEFAULT_KEYS = {
    "max-concurrent-operations": "table.exec.async-ml-predict.max-concurrent-operations",
    "timeout": "table.exec.async-ml-predict.timeout",
    "output-mode": "table.exec.async-ml-predict.output-mode",
}
OUTPUT_MODES = ("ORDERED", "ALLOW_UNORDERED")
_COUNTER = itertools.count(1)


@dataclass
class Rewritten:
    """A statement after rewriting, with the call settings of its ML_PREDICT calls."""

    text: str
    settings: list[CallSettings] = field(default_factory=list)

    def statement_settings(self, where: str) -> CallSettings | None:
        """The one CallSettings of the statement (PyFlink applies one per job), or None."""
        distinct = {(s.max_concurrent, s.timeout) for s in self.settings}
        if len(distinct) > 1:
            calls = "; ".join(
                f"call {n}: max-concurrent-operations {s.max_concurrent}, timeout "
                f"{format_duration(s.timeout)}" for n, s in enumerate(self.settings, 1))
            raise PredictCallError(
                f"{where}: ML_PREDICT calls in one statement use different "
                "'max-concurrent-operations' or 'timeout', but PyFlink's async operator takes one "
                f"value of each per job ({calls}); give every call the same CONFIG values")
        return self.settings[0] if self.settings else None


def format_duration(seconds: float) -> str:
    """A duration as Flink writes one: ``500ms``, ``30s``, ``3min``."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    if millis % 60_000 or millis == 0:
        return f"{millis // 1000}s"
    return f"{millis // 60_000}min"


def _table_config(t_env: Any, key: str) -> str | None:
    value = t_env.get_config().get(key, None)
    return None if value is None else str(value)


def call_settings(config: Mapping[str, str], t_env: Any, where: str) -> CallSettings:
    """CallSettings from an ML_PREDICT CONFIG map, defaults from the table config and Flink's."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise PredictCallError(f"{where}: ML_PREDICT CONFIG: unknown key '{unknown[0]}'; "
                               f"allowed: {', '.join(CONFIG_KEYS)}")
    merged: dict[str, str] = {}
    for key, table_key in DEFAULT_KEYS.items():
        value = _table_config(t_env, table_key) if t_env is not None else None
        if value is not None:
            merged[key] = value
    merged.update(config)
    try:
        asynchronous = opts._boolean(merged.get("async", "true"))
        concurrency = int(merged.get("max-concurrent-operations", "10"))
        if concurrency < 1:
            raise opts.OptionValueError(
                f"max-concurrent-operations must be >= 1, not {concurrency}")
        timeout = opts.parse_duration(merged["timeout"]) if "timeout" in merged else 180.0
        mode = merged.get("output-mode", "ORDERED").upper()
        if mode not in OUTPUT_MODES:
            raise opts.OptionValueError(
                f"output-mode '{mode}' is not one of {', '.join(OUTPUT_MODES)}")
    except ValueError as exc:  # OptionValueError and int() errors
        raise PredictCallError(f"{where}: ML_PREDICT CONFIG: {exc}") from None
    return CallSettings(asynchronous=asynchronous, max_concurrent=concurrency, timeout=timeout,
                        ordered=mode == "ORDERED",
                        queue_factor=ORDERED_QUEUE_FACTOR if asynchronous else 1)


def _input_schema(t_env: Any, call: PredictCall, where: str) -> tuple[list[str], list[Any]]:
    source = f"({call.table})" if call.table_is_query else call.table
    try:
        schema = t_env.sql_query(f"SELECT * FROM {source}").get_schema()
    except Exception as exc:  # noqa: BLE001 - py4j errors carry Flink's message
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "Exception:" in line), first[0] if first else "")
        raise PredictCallError(f"{where}: ML_PREDICT: cannot read TABLE {call.table}: "
                               f"{detail.split('Exception: ', 1)[-1]}") from None
    return list(schema.get_field_names()), list(schema.get_field_data_types())


def check_descriptor(spec: ModelSpec, call: PredictCall, names: list[str], types: list[Any],
                     where: str) -> None:
    """DESCRIPTOR columns exist in TABLE and match the model's INPUT columns by position and type.

    Raises:
        PredictCallError: naming the column, its type and the INPUT column it maps to.
    """
    from .datatypes import from_data_type  # PyFlink: imported when a statement is rewritten

    expected = ", ".join(f"{c.name} {c.type.sql()}" for c in spec.inputs)
    if len(call.columns) != len(spec.inputs):
        count = "one input column" if len(spec.inputs) == 1 else f"{len(spec.inputs)} input columns"
        raise PredictCallError(
            f"{where}: ML_PREDICT: model {spec.name} takes {count} ({expected}), mapped by "
            f"position; DESCRIPTOR names {len(call.columns)}: {', '.join(call.columns)}")
    for column, model_input in zip(call.columns, spec.inputs, strict=True):
        if column not in names:
            raise PredictCallError(f"{where}: ML_PREDICT: column '{column}' is not in TABLE "
                                   f"{call.table}; its columns: {', '.join(names)}")
        actual = types[names.index(column)]
        found = from_data_type(actual)
        if found is None or not found.same_root(model_input.type):
            raise PredictCallError(
                f"{where}: ML_PREDICT: column '{column}' of TABLE {call.table} is {actual}; model "
                f"{spec.name} takes {model_input.type.sql()} input for INPUT column "
                f"'{model_input.name}' (INPUT: {expected})")


def _expansion(spec: ModelSpec, call: PredictCall, table_sql: str, columns: list[str],
               function: str, n: int) -> str:
    alias_in, alias_out, result = f"__mlp_in{n}", f"__mlp_out{n}", f"__mlp_result{n}"
    outputs = list(spec.outputs.names)
    select = ", ".join([f"{quote(alias_in)}.{quote(c)}" for c in columns]
                       + [f"{quote(alias_out)}.{quote(c)}" for c in outputs])
    source = f"({table_sql})" if call.table_is_query else table_sql
    arguments = ", ".join(quote(c) for c in call.columns)
    return (f"(SELECT {select} FROM (SELECT *, {function}({arguments}) AS {quote(result)} "
            f"FROM {source}) AS {quote(alias_in)} CROSS JOIN UNNEST({quote(alias_in)}."
            f"{quote(result)}) AS {quote(alias_out)}({', '.join(quote(c) for c in outputs)}))")


def _unordered_view(t_env: Any, spec: ModelSpec, settings: CallSettings, call: PredictCall,
                    names: list[str], types: list[Any], where: str) -> str | None:
    """The view of an ALLOW_UNORDERED call's results (None: the call runs ordered).

    PyFlink 2.3's async scalar operator cannot emit out of order: Flink 2.3 has no
    ``table.exec.async-scalar.output-mode`` (only the lookup, ML_PREDICT and vector-search async
    operators have an output mode), the Python operation's queue is an
    ``OrderedStreamElementQueue``, and the Java operator pairs results with its forwarded input
    rows first in, first out. Unordered output therefore goes through a DataStream
    ``unordered_wait`` (:mod:`flink_ml_predict.unordered`), which needs a StreamTableEnvironment.
    """
    if settings.ordered:
        return None
    if not settings.asynchronous:
        _LOGGER.info("%s: output-mode ALLOW_UNORDERED with 'async' = 'false': one row at a "
                     "time, in order", where)
        return None
    from .unordered import register_unordered_view

    source = f"({call.table})" if call.table_is_query else call.table
    return register_unordered_view(t_env, spec, settings, source, names, types, call.columns,
                                   where)


def rewrite(text: str, *, t_env: Any, registry: ModelRegistry, where: str) -> Rewritten:
    """Rewrites every ML_PREDICT call of one statement, registering one function per call.

    Raises:
        PredictCallError: unknown model, missing or non-string column, bad CONFIG, clashing names.
    """
    from .functions import make_udf  # PyFlink: the pre-check of a script runs without it

    result = Rewritten(text)
    calls = find_predict_calls(text)
    # Outermost calls only; a call nested in a TABLE (subquery) is rewritten with that subquery.
    outer = [c for c in calls if not any(o is not c and o.start <= c.start and c.end <= o.end
                                         for o in calls)]
    pieces: list[str] = []
    position = 0
    for call in outer:
        spec = registry.get(call.model_parts)
        if spec is None:
            key = registry.qualify(call.model_parts)
            raise PredictCallError(f"{where}: " + unknown_model(
                call.model_parts, key, registry.names(), "created in this session"))
        table_sql = call.table
        if call.table_is_query:
            inner = rewrite(call.table, t_env=t_env, registry=registry, where=where)
            result.settings += inner.settings
            table_sql = inner.text
        lookup = PredictCall(call.start, call.end, table_sql, call.table_is_query,
                             call.model_parts, call.columns, call.config)
        names, types = _input_schema(t_env, lookup, where)
        check_descriptor(spec, call, names, types, where)
        clash = [c for c in spec.outputs.names if c in names]
        if clash:
            raise PredictCallError(f"{where}: ML_PREDICT: output column '{clash[0]}' of model "
                                   f"{spec.name} has the name of a column of TABLE {call.table}; "
                                   "rename one of them (e.g. in a view)")
        settings = call_settings(call.config, t_env, where)
        view = _unordered_view(t_env, spec, settings, lookup, names, types, where)
        if view is not None:  # the DataStream path (unordered.py): its own operator settings
            pieces += [text[position:call.start], f"(SELECT * FROM {quote(view)})"]
            position = call.end
            continue
        n = next(_COUNTER)
        function_name = f"__ml_predict_{re.sub(r'[^A-Za-z0-9_]', '_', spec.name)}_{n}"
        function = make_udf(spec, settings)
        t_env.create_temporary_system_function(function_name, function)
        result.settings.append(settings)
        pieces += [text[position:call.start],
                   _expansion(spec, call, table_sql, names, function_name, n)]
        position = call.end
    pieces.append(text[position:])
    result.text = "".join(pieces)
    return result


def apply_settings(t_env: Any, settings: CallSettings | None) -> None:
    """Configures PyFlink's async scalar operator for the statement about to be planned.

    Our functions own retries, so Flink's own fixed-delay retry of async scalar functions
    (default: 3 attempts on any exception) is switched off: it would resend failed requests.
    """
    config = t_env.get_config()
    config.set("table.exec.async-scalar.retry-strategy", "NO_RETRY")
    if settings is not None:
        config.set("table.exec.async-scalar.max-concurrent-operations",
                   str(settings.queue_capacity))
        config.set("table.exec.async-scalar.timeout",
                   f"{int(settings.operator_timeout * 1000)} ms")
