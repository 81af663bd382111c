"""The Python API for PyFlink programs: models from options or DDL, scripts, and predictions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import sqltext
from .definition import build_spec
from .errors import ModelDefinitionError
from .model import Column, ModelSpec, masked_options
from .registry import ModelRegistry
from .rewrite import apply_settings, rewrite
from .runner import ScriptRunner
from .sqltext import quote_identifier, quote_string

_VIEW_COUNTER = iter(range(1, 1 << 62))


ColumnSpec = tuple[str, str] | tuple[str, str, "str | None"]
"""A column given from Python: ``(name, type)`` or ``(name, type, comment)``."""
Columns = Iterable[ColumnSpec] | Mapping[str, "str | tuple[str, str | None]"]
"""Columns given from Python: a sequence of column tuples, or ``{name: type}`` /
``{name: (type, comment)}`` in order."""


def _columns(columns: Columns, clause: str, model: str) -> list[Column]:
    pairs: Iterable[Any] = (
        [(name, *(value if isinstance(value, tuple) else (value,)))
         for name, value in columns.items()] if isinstance(columns, Mapping) else columns)
    result = []
    for entry in pairs:
        if not (isinstance(entry, tuple) and len(entry) in (2, 3)
                and all(isinstance(part, str) for part in entry[:2])
                and (len(entry) == 2 or entry[2] is None or isinstance(entry[2], str))):
            raise ModelDefinitionError(
                f"register_model({model!r}): {clause} column {entry!r} must be (name, type) or "
                "(name, type, comment), e.g. ('label', 'STRING', 'positive or negative')")
        result.append(Column(*entry))
    return result


def register_model(
    t_env: Any,
    name: str,
    options: Mapping[str, str],
    *,
    inputs: Columns = (("input", "STRING"),),
    outputs: Columns = (("content", "STRING"),),
    if_not_exists: bool = False,
) -> ModelSpec:
    """Registers a model on a TableEnvironment, as CREATE TEMPORARY MODEL would.

    Args:
        t_env: the TableEnvironment.
        name: the model's name in SQL.
        options: the WITH (...) options of CREATE MODEL, e.g. provider, endpoint, api-key, model,
            prompt-template.
        inputs: INPUT columns, in order: ``[(name, type), ...]``, ``(name, type, comment)``
            tuples or ``{name: type}``. ML_PREDICT maps the columns it is given to them by
            position.
        outputs: OUTPUT columns, the same ways: one STRING column (a chat answer), one
            ARRAY<FLOAT> column (embeddings) or several typed columns (a structured answer;
            comments become the fields' descriptions), plus optional metadata columns
            (error-string, http-status-code, http-headers-map, prompt-tokens,
            completion-tokens, total-tokens, finish-reason).
        if_not_exists: keep an existing model of that name instead of failing.

    Returns:
        The validated model spec.

    Raises:
        ModelDefinitionError: naming the model and the option or column at fault.

    Example:
        >>> register_model(t_env, "review", {"provider": "openai",    # doctest: +SKIP
        ...     "endpoint": "https://api.openai.com/v1/chat/completions",
        ...     "api-key": os.environ["OPENAI_API_KEY"], "model": "gpt-4o-mini",
        ...     "prompt-template": "Title: {title}\\nReview: {body}"},
        ...     inputs=[("title", "STRING"), ("body", "STRING")],
        ...     outputs=[("label", "STRING", "positive, negative, neutral or mixed"),
        ...              ("confidence", "DOUBLE")])
    """
    input_columns = _columns(inputs, "INPUT", name)
    output_columns = _columns(outputs, "OUTPUT", name)
    spec = build_spec(name, dict(options), input_columns, output_columns,
                      where=f"register_model({name!r})")
    parts = tuple(name.split("."))
    if ModelRegistry.of(t_env).add(parts, spec, if_not_exists=if_not_exists):
        ddl = sqltext.CreateModel(
            name_parts=parts, temporary=True, if_not_exists=if_not_exists,
            inputs=tuple(sqltext.ColumnDef(c.name, c.type, c.comment) for c in input_columns),
            outputs=tuple(sqltext.ColumnDef(c.name, c.type, c.comment) for c in output_columns),
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


def predict(t_env: Any, table: Any, model: str, columns: str | Sequence[str],
            config: Mapping[str, str] | None = None) -> Any:
    """Applies a model to a Table: all its columns plus the model's OUTPUT columns.

    Args:
        t_env: the TableEnvironment the model was registered on.
        table: the input Table.
        model: the model's name (``m``, ``db.m`` or ``catalog.db.m``).
        columns: the column of ``table`` sent to the model, or a list of columns mapped to the
            model's INPUT columns by position (like ML_PREDICT's DESCRIPTOR).
        config: ML_PREDICT's CONFIG map (``timeout``, ``max-concurrent-operations``, ...).

    Example:
        >>> labelled = predict(t_env, comments, "sentiment", "user_comment")  # doctest: +SKIP
        >>> reviews = predict(t_env, comments, "review", ["title", "body"])    # doctest: +SKIP
    """
    view = f"__mlp_view_{next(_VIEW_COUNTER)}"
    t_env.create_temporary_view(view, table)
    return sql_query(t_env, predict_query(view, model, columns, config))


def predict_query(view: str, model: str, columns: str | Sequence[str],
                  config: Mapping[str, str] | None = None) -> str:
    """The ML_PREDICT query :func:`predict` runs: names backquoted, CONFIG as string literals."""
    names = [columns] if isinstance(columns, str) else list(columns)
    entries = ", ".join(f"{quote_string(k)}, {quote_string(v)}" for k, v in (config or {}).items())
    config_sql = f", MAP[{entries}]" if entries else ""
    model_sql = ".".join(quote_identifier(p) for p in model.split("."))
    descriptor = ", ".join(quote_identifier(c) for c in names)
    return (f"SELECT * FROM ML_PREDICT(TABLE {quote_identifier(view)}, MODEL {model_sql}, "
            f"DESCRIPTOR({descriptor}){config_sql})")
