"""The SQL text layer: what the runner must understand of a script before Flink sees it.

One module per concern, all driven by one tokenizer:

* :mod:`.lexer`: tokens (string literals, backquoted identifiers, comments never split a
  statement) and the recursive-descent cursor the parsers share;
* :mod:`.script`: splitting a script into statements, classifying them, and the SQL client's
  own statements (SET, RESET, EXECUTE STATEMENT SET, EXPLAIN, USE);
* :mod:`.ddl`: CREATE MODEL / DROP MODEL; :mod:`.with_clause`: ``WITH ('k' = 'v')`` clauses;
* :mod:`.predict`: the ML_PREDICT locator;
* :mod:`.env`: ``'${NAME}'`` substitution.

Problems are :class:`~flink_ml_predict.errors.SqlSyntaxError` (or
:class:`~flink_ml_predict.errors.PredictCallError` for ML_PREDICT) naming what was expected and
the line where it was not found. Nothing here imports Flink or does I/O, so a whole script is
checked before the JVM starts; no message ever quotes the content of a string literal.
"""

from __future__ import annotations

from .ddl import ColumnDef, CreateModel, DropModel, parse_create_model, parse_drop_model
from .env import substitute_env
from .lexer import Token, quote_identifier, quote_string, tokenize
from .predict import PredictCall, find_predict_calls
from .script import (
    Statement,
    explain_target,
    parse_reset,
    parse_set,
    parse_use,
    split_statements,
    statement_kind,
    statement_set_inner,
)
from .with_clause import remove_with_options, with_options

__all__ = [
    "ColumnDef",
    "CreateModel",
    "DropModel",
    "PredictCall",
    "Statement",
    "Token",
    "explain_target",
    "find_predict_calls",
    "parse_create_model",
    "parse_drop_model",
    "parse_reset",
    "parse_set",
    "parse_use",
    "quote_identifier",
    "quote_string",
    "remove_with_options",
    "split_statements",
    "statement_kind",
    "statement_set_inner",
    "substitute_env",
    "tokenize",
    "with_options",
]
