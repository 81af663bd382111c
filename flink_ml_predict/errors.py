"""Errors raised by flink_ml_predict.

Tree::

    FlinkMlPredictError                 base of everything we raise
    +-- ConfigurationError              bad input found before a job starts
    |   +-- SqlSyntaxError              a script or statement that cannot be split or parsed
    |   +-- ModelDefinitionError        CREATE MODEL: provider, options, INPUT/OUTPUT schema
    |   +-- PredictCallError            ML_PREDICT: unknown model, missing column, bad CONFIG
    +-- StatementError                  Flink rejected a statement, or the job it started failed
    +-- ModelCallError                  a request to the model service failed at run time
        +-- RetryableModelCallError     may succeed later (408/409/429/5xx, connection, timeout,
        |                               malformed response)
        +-- PermanentModelCallError     will not succeed by retrying (400/401/403/404)
            +-- AnswerFormatError       a structured answer that does not fit the OUTPUT columns

Every message that concerns a statement names it (``statement 3 (line 12)``) and the option or
column at fault; no message ever contains an api-key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class FlinkMlPredictError(Exception):
    """Base class of every error raised by this package."""


class ConfigurationError(FlinkMlPredictError, ValueError):
    """Bad input detected before a job starts."""


class SqlSyntaxError(ConfigurationError):
    """A script or a statement could not be split or parsed."""


class ModelDefinitionError(ConfigurationError):
    """A CREATE MODEL statement (or a model given from Python) is invalid."""


class PredictCallError(ConfigurationError):
    """An ML_PREDICT call is invalid."""


class StatementError(FlinkMlPredictError):
    """Flink rejected a statement, or the job it started failed."""


class ModelCallError(FlinkMlPredictError):
    """A request to the model service failed.

    Attributes:
        status: HTTP status code, or None when no response arrived.
        headers: response headers (lower-case names, each with a list of values).
        request_id: the provider's request id when the response carried one.
        url: what the failed request called (``POST http://host/v1/chat/completions``, never
            user info or a query string), when a request was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, Sequence[str]] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = {k: list(v) for k, v in (headers or {}).items()}
        self.request_id = request_id
        self.retry_after = retry_after
        self.url = url

    def described(self) -> str:
        """The message followed by what was called (for messages and logs; the error-string
        column holds the message alone)."""
        return f"{self} ({self.url})" if self.url else str(self)


class RetryableModelCallError(ModelCallError):
    """A failure that may succeed when the request is sent again."""


class PermanentModelCallError(ModelCallError):
    """A failure that sending the same request again will not fix."""


class AnswerFormatError(PermanentModelCallError):
    """A structured answer that stayed invalid JSON, or did not fit the OUTPUT columns, after the
    re-asks (``output-retry-num``); the message gives the reason and the start of the answer."""
