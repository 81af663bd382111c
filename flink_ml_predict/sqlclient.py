"""Model functions for Flink's SQL client, which cannot run our Python code by itself.

From a script of CREATE MODEL statements, :func:`generate` writes

* ``<module>.py``: one PyFlink function per model, built when the module is imported (by the SQL
  client to register it, by each TaskManager's Python worker to run it). The module holds the
  CREATE MODEL text as written, so ``'${NAME}'`` references, the api-key's above all, are read from
  the environment of the importing process and never written to a file;
* ``init.sql``: ``SET`` statements and ``CREATE TEMPORARY SYSTEM FUNCTION ... LANGUAGE PYTHON`` for
  every model, plus the models themselves (api-key masked) so SHOW / DESCRIBE MODEL work.

Then ``sql-client.sh -i init.sql -pyfs <module>.py`` and, per model ``m`` with INPUT ``(a, b)``
and OUTPUT ``(label, confidence)``::

    SELECT t.*, p.* FROM t CROSS JOIN UNNEST(m(t.col1, t.col2)) AS p(label, confidence);

which is what ``ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(col1, col2))`` is rewritten to: one
argument per INPUT column, by position, and one UNNEST column per OUTPUT column. init.sql's
header shows this query for each model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import sqltext
from .definition import build_spec
from .errors import ConfigurationError
from .functions import make_udf
from .model import CallSettings, Column, masked_options

DEFAULT_MODULE = "flink_ml_predict_models"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INIT_SETTINGS = {
    # Retries belong to our functions; Flink's fixed-delay retry would resend failed requests.
    "table.exec.async-scalar.retry-strategy": "NO_RETRY",
}


def model_function(ddl: str, *, environ: Mapping[str, str] | None = None,
                   settings: CallSettings | None = None) -> Any:
    """The PyFlink function of one CREATE MODEL statement (``${NAME}`` read from the environment).

    Example:
        >>> ai_analyze_sentiment = model_function('''CREATE MODEL ai_analyze_sentiment
        ...   INPUT (`input` STRING) OUTPUT (`content` STRING) WITH ('provider' = 'qwen',
        ...   'endpoint' = '${QWEN_ENDPOINT}', 'api-key' = '${DASHSCOPE_API_KEY}',
        ...   'model' = 'qwen-plus')''')                                  # doctest: +SKIP
    """
    text = sqltext.substitute_env(ddl, os.environ if environ is None else environ)
    create = sqltext.parse_create_model(text)
    spec = build_spec(create.name, create.options,
                      [Column(c.name, c.type, c.comment) for c in create.inputs],
                      [Column(c.name, c.type, c.comment) for c in create.outputs],
                      where="CREATE MODEL")
    return make_udf(spec, settings or CallSettings())


def _name(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else sqltext.quote_identifier(name)


def query_form(function: str, inputs: list[str], outputs: list[str]) -> str:
    """The SQL-client query of one model function over a table ``t``.

    Example:
        >>> query_form("review", ["title", "body"], ["label", "prompt-tokens"])
        'SELECT t.*, p.* FROM t CROSS JOIN UNNEST(review(t.title, t.body)) AS p(label, \
`prompt-tokens`);'
    """
    arguments = ", ".join(f"t.{_name(c)}" for c in inputs)
    return (f"SELECT t.*, p.* FROM t CROSS JOIN UNNEST({_name(function)}({arguments})) AS "
            f"p({', '.join(_name(c) for c in outputs)});")


@dataclass(frozen=True)
class Generated:
    """What :func:`generate` wrote."""

    init_sql: Path
    module: Path
    functions: tuple[str, ...]


def generate(script: str, out_dir: Path, *, module: str = DEFAULT_MODULE,
             environ: Mapping[str, str] | None = None) -> Generated:
    """Writes init.sql and the functions module for the CREATE MODEL statements of a script.

    Every model is validated first (with the environment's values), so a bad definition is
    reported here rather than in the SQL client.

    Raises:
        ConfigurationError: a statement other than CREATE MODEL / SET, or an invalid model.
    """
    if not module.isidentifier():
        raise ConfigurationError(f"module name '{module}' is not a Python identifier")
    environ = os.environ if environ is None else environ
    settings: list[str] = [f"SET '{k}' = '{v}';" for k, v in INIT_SETTINGS.items()]
    functions: list[str] = []
    models: list[str] = []
    definitions: list[str] = []
    queries: list[str] = []
    for statement in sqltext.split_statements(script):
        where = statement.label()
        kind = sqltext.statement_kind(statement.text)
        if kind == "set":
            settings.append(statement.text + ";")
            continue
        if kind != "create_model":
            raise ConfigurationError(f"{where}: only CREATE MODEL and SET statements belong in a "
                                     "model script for the SQL client")
        model_function(statement.text, environ=environ)  # validate now
        create = sqltext.parse_create_model(statement.text)
        name = create.name_parts[-1]
        if not name.isidentifier() or name in functions:
            raise ConfigurationError(f"{where}: model name '{name}' must be a unique Python "
                                     "identifier to become a SQL client function")
        functions.append(name)
        queries.append(query_form(name, [c.name for c in create.inputs],
                                  [c.name for c in create.outputs]))
        definitions.append(f"{name} = model_function({statement.text!r})\n")
        models.append(create.render(masked_options(create.options)) + ";")

    out_dir.mkdir(parents=True, exist_ok=True)
    module_path = out_dir / f"{module}.py"
    module_path.write_text(
        '"""ML_PREDICT functions for the Flink SQL client, generated by '
        '`flink-ml-predict sql-client`.\n\nEach function is built from its CREATE MODEL statement '
        "when this module is imported; '${NAME}'\nreferences come from the environment of the "
        'importing process (SQL client, TaskManagers)."""\n\n'
        "from flink_ml_predict.sqlclient import model_function\n\n" + "".join(definitions),
        encoding="utf-8")
    creates = [f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS `{name}` AS '{module}.{name}' "
               "LANGUAGE PYTHON;" for name in functions]
    init_path = out_dir / "init.sql"
    init_path.write_text(
        "-- Generated by `flink-ml-predict sql-client`. Start the SQL client with:\n"
        f"--   sql-client.sh -i {init_path.name} -pyfs {module_path.name}\n"
        "-- and query each model as ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(...)) would: the\n"
        "-- columns of t in INPUT order as arguments, one UNNEST column per OUTPUT column:\n"
        + "".join(f"--   {query}\n" for query in queries)
        + "\n".join(settings + creates + models) + "\n", encoding="utf-8")
    return Generated(init_path, module_path, tuple(functions))
