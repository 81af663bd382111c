"""The Python API for PyFlink programs: models from options or DDL, scripts, and predictions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import sqltext
from .model import Column, ModelSpec, build_spec, masked_options
from .registry import ModelRegistry
from .rewrite import apply_settings, rewrite
from .runner import ScriptRunner
from .sqltext import quote_identifier, quote_string

_VIEW_COUNTER = iter(range(1, 1 << 62))


def _columns(columns: Iterable[tuple[str, str]] | Mapping[str, str]) -> list[Column]:
    pairs = columns.items() if isinstance(columns, Mapping) else columns
    return [Column(name, type_) for name, type_ in pairs]


def register_model(
    t_env: Any,
    name: str,
    options: Mapping[str, str],
    *,
    inputs: Iterable[tuple[str, str]] | Mapping[str, str] = (("input", "STRING"),),
    outputs: Iterable[tuple[str, str]] | Mapping[str, str] = (("content", "STRING"),),
    if_not_exists: bool = False,
) -> ModelSpec:
    """Registers a model on a TableEnvironment, as CREATE TEMPORARY MODEL would.

    Args:
        t_env: the TableEnvironment.
        name: the model's name in SQL.
        options: the WITH (...) options of CREATE MODEL, e.g. provider, endpoint, api-key, model.
        inputs: INPUT columns as (name, type) pairs.
        outputs: OUTPUT columns: one value column (STRING for chat, ARRAY<FLOAT> for
            embeddings) and optionally the metadata columns error-string, http-status-code,
            http-headers-map.
        if_not_exists: keep an existing model of that name instead of failing.

    Returns:
        The validated model spec.

    Example:
        >>> register_model(t_env, "sentiment", {"provider": "openai",    # doctest: +SKIP
        ...     "endpoint": "https://api.openai.com/v1/chat/completions",
        ...     "api-key": os.environ["OPENAI_API_KEY"], "model": "gpt-4o-mini",
        ...     "system-prompt": "Classify ... Output only the label."})
    """
    spec = build_spec(name, dict(options), _columns(inputs), _columns(outputs),
                      where=f"register_model({name!r})")
    parts = tuple(name.split("."))
    if ModelRegistry.of(t_env).add(parts, spec, if_not_exists=if_not_exists):
        ddl = sqltext.CreateModel(
            name_parts=parts, temporary=True, if_not_exists=if_not_exists,
            inputs=tuple(sqltext.ColumnDef(c.name, c.type) for c in _columns(inputs)),
            outputs=tuple(sqltext.ColumnDef(c.name, c.type) for c in _columns(outputs)),
            options=masked_options(dict(options)), comment=None)
        t_env.execute_sql(ddl.render())
    return spec


def execute_script(t_env: Any, script: str, *, wait: bool = True,
                   environ: Mapping[str, str] | None = None) -> list[Any]:
    """Runs a SQL script (CREATE MODEL, ML_PREDICT, SET, statement sets...) on t_env.

    Returns:
        Flink's TableResults of the statements that produced one.
    """
    return ScriptRunner(t_env, wait=wait, environ=environ).run(script)


def execute_sql(t_env: Any, statement: str, *, wait: bool = False) -> Any:
    """Executes one statement like ``t_env.execute_sql`` but with CREATE MODEL and ML_PREDICT."""
    statements = sqltext.split_statements(statement)
    runner = ScriptRunner(t_env, wait=wait)
    results = [runner.execute(s) for s in statements]
    return results[-1] if results else None


def sql_query(t_env: Any, query: str) -> Any:
    """Like ``t_env.sql_query`` but ML_PREDICT calls work: returns a Table."""
    rewritten = rewrite(query, t_env=t_env, registry=ModelRegistry.of(t_env), where="sql_query")
    apply_settings(t_env, rewritten.statement_settings("sql_query"))
    return t_env.sql_query(rewritten.text)


def predict(t_env: Any, table: Any, model: str, column: str,
            config: Mapping[str, str] | None = None) -> Any:
    """Applies a model to a Table: all its columns plus the model's OUTPUT columns.

    Args:
        t_env: the TableEnvironment the model was registered on.
        table: the input Table.
        model: the model's name (``m``, ``db.m`` or ``catalog.db.m``).
        column: the STRING column of ``table`` sent to the model.
        config: ML_PREDICT's CONFIG map (``timeout``, ``max-concurrent-operations``, ...).

    Example:
        >>> labelled = predict(t_env, comments, "sentiment", "user_comment")  # doctest: +SKIP
    """
    view = f"__mlp_view_{next(_VIEW_COUNTER)}"
    t_env.create_temporary_view(view, table)
    return sql_query(t_env, predict_query(view, model, column, config))


def predict_query(view: str, model: str, column: str,
                  config: Mapping[str, str] | None = None) -> str:
    """The ML_PREDICT query :func:`predict` runs: names backquoted, CONFIG as string literals."""
    entries = ", ".join(f"{quote_string(k)}, {quote_string(v)}" for k, v in (config or {}).items())
    config_sql = f", MAP[{entries}]" if entries else ""
    model_sql = ".".join(quote_identifier(p) for p in model.split("."))
    return (f"SELECT * FROM ML_PREDICT(TABLE {quote_identifier(view)}, MODEL {model_sql}, "
            f"DESCRIPTOR({quote_identifier(column)}){config_sql})")
