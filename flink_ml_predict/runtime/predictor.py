"""One row in, zero or more output rows out: the per-row pipeline of a model call.

Order per row: null check -> token limits (context overflow, embeddings max-tokens) -> retry
(tenacity) -> request (client) -> rows. Failures follow the model's strategy: FAILOVER raises
(the Flink job fails), IGNORE emits the row's error in the metadata columns, or drops the row
with a warning and a metric when there are none. Nothing is lost silently.

The shape leaves room for what comes next: embeddings batching slots in behind ``_embed_one``,
rate limits in front of the request, usage columns beside the metadata columns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .. import options as opts
from ..errors import ModelCallError, RetryableModelCallError
from ..model import ERROR_STRING, HTTP_HEADERS_MAP, HTTP_STATUS_CODE, VALUE, ModelSpec
from .client import AsyncModelClient, Usage
from .metrics import Metrics
from .retry import RetryPolicy

_LOGGER = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT = 10
DEFAULT_OPERATOR_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class CallSettings:
    """How Flink runs one ML_PREDICT call (its CONFIG map, defaults from the table config).

    Attributes:
        asynchronous: async scalar function (True) or a synchronous one.
        max_concurrent: requests in flight per parallel instance (Flink's capacity).
        timeout: Flink's operator timeout for one row, in seconds.
        ordered: ORDERED output; PyFlink's async scalar operator always emits in order.
    """

    asynchronous: bool = True
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    timeout: float = DEFAULT_OPERATOR_TIMEOUT_S
    ordered: bool = True

    @property
    def row_budget(self) -> float:
        """Seconds a row may spend on attempts and waits: inside the operator timeout, with a margin
        so that a row given up under IGNORE is emitted before Flink's timeout fails the job."""
        margin = min(max(1.0, 0.1 * self.timeout), 0.5 * self.timeout)
        return self.timeout - margin


class _Sampled:
    """Logs the first occurrences of a per-row event, then one line per thousand."""

    def __init__(self, first: int = 20, every: int = 1000) -> None:
        self._count = 0
        self._first = first
        self._every = every

    def warning(self, message: str, *args: Any) -> None:
        self._count += 1
        if self._count <= self._first or self._count % self._every == 0:
            _LOGGER.warning(message + " [occurrence %d]", *args, self._count)


class Predictor:
    """Calls one model for one row at a time; many rows may be in flight on one event loop."""

    def __init__(
        self,
        spec: ModelSpec,
        settings: CallSettings,
        *,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._sleep = sleep
        self._client: AsyncModelClient | None = None
        strategy = spec.get(opts.ERROR_HANDLING_STRATEGY)
        self._strategy = strategy
        self._fallback = spec.get(opts.RETRY_FALLBACK_STRATEGY) if strategy == "RETRY" else strategy
        self._policy = RetryPolicy(
            max_retries=spec.get(opts.RETRY_NUM) if strategy == "RETRY" else 0,
            initial_backoff=spec.get(opts.RETRY_INITIAL_BACKOFF),
            max_backoff=spec.get(opts.RETRY_MAX_BACKOFF),
        )
        self._has_metadata = any(c.role != VALUE for c in spec.outputs)
        self._counter = None
        limit = spec.get(opts.MAX_CONTEXT_SIZE)
        self._context_limit: int | None = limit
        self._overflow = spec.get(opts.CONTEXT_OVERFLOW_ACTION)
        self._embed_limit: int | None = (spec.get(opts.MAX_TOKENS)
                                         if spec.task == opts.EMBEDDINGS else None)
        self._log_null = _Sampled()
        self._log_overflow = _Sampled()
        self._log_dropped = _Sampled()
        self._log_retry = _Sampled()

    @property
    def metrics(self) -> Metrics:
        """The counters of this predictor."""
        return self._metrics

    # --- input ------------------------------------------------------------------------------

    def _tokens(self) -> Any:
        if self._counter is None:
            from .tokens import TokenCounter

            self._counter = TokenCounter.for_model(self._spec.model, self._spec.provider.name)
        return self._counter

    def _fit(self, text: str) -> str | None:
        """The text to send after token limits, or None when the row is skipped."""
        if self._context_limit is not None:
            counter = self._tokens()
            count = counter.count(text)
            if count > self._context_limit:
                action = self._overflow
                if action.endswith("-log"):
                    self._log_overflow.warning(
                        "model %s: input of %d tokens exceeds max-context-size %d: %s",
                        self._spec.name, count, self._context_limit, action)
                if action.startswith("skipped"):
                    self._metrics.inc("rows-skipped")
                    return None
                text = (counter.truncate_tail if action.startswith("truncated-tail")
                        else counter.truncate_head)(text, self._context_limit)
                self._metrics.inc("rows-truncated")
        if self._embed_limit is not None:
            text = self._tokens().truncate_tail(text, self._embed_limit)
        return text

    # --- calls --------------------------------------------------------------------------------

    def _get_client(self) -> AsyncModelClient:
        if self._client is None:
            self._client = AsyncModelClient(self._spec,
                                            max_connections=self._settings.max_concurrent)
        return self._client

    async def _attempt(self, text: str, deadline: float) -> tuple[list[Any], Usage]:
        client = self._get_client()
        remaining = max(deadline - time.monotonic(), 0.001)
        timeout = min(self._spec.get(opts.REQUEST_TIMEOUT), remaining)
        self._metrics.inc("requests")
        started = time.monotonic()
        self._metrics.in_flight += 1
        try:
            # The whole attempt (connecting and queueing included) ends with the row's budget.
            return await asyncio.wait_for(self._send(client, text, timeout), remaining)
        except asyncio.TimeoutError:
            self._metrics.inc("failures")
            raise RetryableModelCallError("request timed out") from None
        except ModelCallError:
            self._metrics.inc("failures")
            raise
        finally:
            self._metrics.in_flight -= 1
            self._metrics.observe_latency(time.monotonic() - started)

    async def _send(self, client: AsyncModelClient, text: str,
                    timeout: float) -> tuple[list[Any], Usage]:
        if self._spec.task == opts.CHAT:
            chat = await client.chat(text, timeout)
            return list(chat.contents), chat.usage
        vector, usage = await self._embed_one(client, text, timeout)
        return [vector], usage

    async def _embed_one(self, client: AsyncModelClient, text: str,
                         timeout: float) -> tuple[list[float], Usage]:
        answer = await client.embed([text], timeout)
        return answer.vectors[0], answer.usage

    async def _call(self, text: str) -> tuple[list[Any], Usage]:
        deadline = time.monotonic() + self._settings.row_budget
        retrying = self._policy.to_retrying(
            budget=self._settings.row_budget, sleep=self._sleep, on_retry=self._on_retry)
        async for attempt in retrying:
            with attempt:
                return await self._attempt(text, deadline)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _on_retry(self, state: Any) -> None:
        self._metrics.inc("retries")
        exc = state.outcome.exception() if state.outcome is not None else None
        self._log_retry.warning("model %s: attempt %d failed (%s); retrying in %.2fs",
                                self._spec.name, state.attempt_number, exc, state.upcoming_sleep)

    # --- output -------------------------------------------------------------------------------

    def _row(self, value: Any, error: ModelCallError | None = None) -> tuple[Any, ...]:
        cells: list[Any] = []
        for column in self._spec.outputs:
            if column.role == VALUE:
                cells.append(value)
            elif error is None:
                cells.append(None)
            elif column.role == ERROR_STRING:
                cells.append(str(error))
            elif column.role == HTTP_STATUS_CODE:
                cells.append(error.status)
            elif column.role == HTTP_HEADERS_MAP:
                cells.append(dict(error.headers) if error.status is not None else None)
        return tuple(cells)

    async def predict(self, text: str | None) -> list[tuple[Any, ...]]:
        """The output rows for one input value (each a tuple in OUTPUT column order).

        Raises:
            ModelCallError: when the row failed and the strategy says FAILOVER.
        """
        if text is None:
            self._metrics.inc("rows-skipped")
            self._log_null.warning("model %s: input is null; row skipped", self._spec.name)
            return []
        fitted = self._fit(text)
        if fitted is None:
            return []
        try:
            values, usage = await self._call(fitted)
        except ModelCallError as exc:
            return self._fail(exc)
        self._metrics.inc("tokens-in", usage.prompt_tokens)
        self._metrics.inc("tokens-out", usage.completion_tokens)
        return [self._row(value) for value in values]

    def _fail(self, exc: ModelCallError) -> list[tuple[Any, ...]]:
        self._metrics.inc("rows-failed")
        if self._fallback == "FAILOVER":
            raise type(exc)(
                f"ML_PREDICT with model {self._spec.name} failed "
                f"(error-handling-strategy {self._strategy}): {exc}",
                status=exc.status, headers=exc.headers, request_id=exc.request_id) from exc
        if self._has_metadata:
            return [self._row(None, exc)]
        self._metrics.inc("rows-dropped")
        self._log_dropped.warning(
            "model %s: row dropped under IGNORE (declare the error-string column in OUTPUT to "
            "keep it): %s", self._spec.name, exc)
        return []

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
