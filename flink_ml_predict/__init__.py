"""CREATE MODEL and ML_PREDICT for PyFlink: OpenAI, Qwen (DashScope) and Bailian models from SQL.

Public API: :func:`register_model`, :func:`execute_script`, :func:`execute_sql`,
:func:`sql_query`, :func:`predict`, :class:`ScriptRunner`, :func:`create_table_environment`, the
error classes, and :class:`ModelSpec`.
"""

from .api import execute_script, execute_sql, predict, register_model, sql_query
from .environment import create_table_environment
from .errors import (
    AnswerFormatError,
    ConfigurationError,
    FlinkMlPredictError,
    ModelCallError,
    ModelDefinitionError,
    PermanentModelCallError,
    PredictCallError,
    RetryableModelCallError,
    SqlSyntaxError,
    StatementError,
)
from .model import ModelSpec
from .runner import ScriptRunner

__version__ = "0.1.0"

__all__ = [
    "AnswerFormatError",
    "ConfigurationError",
    "FlinkMlPredictError",
    "ModelCallError",
    "ModelDefinitionError",
    "ModelSpec",
    "PermanentModelCallError",
    "PredictCallError",
    "RetryableModelCallError",
    "ScriptRunner",
    "SqlSyntaxError",
    "StatementError",
    "__version__",
    "create_table_environment",
    "execute_script",
    "execute_sql",
    "predict",
    "register_model",
    "sql_query",
]
