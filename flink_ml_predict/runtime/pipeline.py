"""The requests of one model function: cache -> embedding batches -> retry -> cooldown and limits
-> client.

:class:`CallPipeline` is what the predictor hands a row's request to (a chat's messages, an
embedding's text) once the row's text is built and fitted. One pipeline per worker and model
function; every row in flight on the worker's event loop goes through it:

* :mod:`.cache` (``'cache' = 'true'``): identical requests share one call and reuse its answer;
* :mod:`.batching` (embeddings, ``batch-size`` > 1, async functions): rows share requests;
* :mod:`.retry`: tenacity's retry loop, one per request (a batch is one request);
* :mod:`.pacing`: the shared cooldown after a 429 and the per-minute limits, before each attempt;
* :mod:`.client`: the HTTP request.

Every wait counts toward the row's time budget (``CallSettings.row_budget``), which sits inside
Flink's operator timeout; a batch's deadline is the earliest of its rows'.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ..errors import ModelCallError, PermanentModelCallError, RetryableModelCallError
from ..model import CallSettings, ModelSpec
from ..options import DEFAULT_COMPLETION_TOKENS
from .batching import EmbeddingBatcher
from .cache import ResponseCache
from .client import AsyncModelClient
from .limits import OutOfBudget
from .metrics import Metrics
from .pacing import Pacer
from .responses import ChatAnswer, EmbeddingAnswer, Usage
from .retry import RetryPolicy

_LOGGER = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 4
"""Tokens added per chat message to its text's count (role and separators) for TPM estimates."""


class _Answered(Protocol):
    @property
    def usage(self) -> Usage: ...


_A = TypeVar("_A", bound=_Answered)
Send = Callable[[AsyncModelClient, float], Awaitable[_A]]


class _BudgetCut(Exception):
    """An attempt cut because the row's time budget ended before the request's own timeout (not
    retried: the budget is spent; :meth:`CallPipeline.call` says what the row got before it)."""


class SampledLog:
    """Logs the first occurrences of a per-row event, then one line per thousand."""

    def __init__(self, first: int = 20, every: int = 1000) -> None:
        self._count = 0
        self._first = first
        self._every = every

    def warning(self, message: str, *args: Any) -> None:
        self._count += 1
        if self._count <= self._first or self._count % self._every == 0:
            _LOGGER.warning(message + " [occurrence %d]", *args, self._count)


class CallPipeline:
    """Sends the requests of one model function for the rows in flight in one worker.

    Args:
        spec: the model.
        settings: the ML_PREDICT call's operator settings.
        metrics: the function's counters.
        sleep: the coroutine used to wait (tests inject a recorder).
    """

    def __init__(self, spec: ModelSpec, settings: CallSettings, *, metrics: Metrics,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._spec = spec
        self._settings = settings
        self._metrics = metrics
        self._sleep = sleep
        self._client: AsyncModelClient | None = None
        self._counter: Any = None
        failure = spec.failure
        self._policy = RetryPolicy(max_retries=failure.max_retries,
                                   initial_backoff=failure.initial_backoff,
                                   max_backoff=failure.max_backoff)
        limits = spec.throughput
        self._pacer = Pacer(requests_per_minute=limits.requests_per_minute,
                            tokens_per_minute=limits.tokens_per_minute,
                            initial_backoff=failure.initial_backoff,
                            max_backoff=failure.max_backoff, metrics=metrics, sleep=sleep,
                            name=spec.name)
        caching = limits.cache_entries > 0
        self._chat_cache: ResponseCache[ChatAnswer] | None = (
            ResponseCache(limits.cache_entries, metrics) if caching and spec.chat else None)
        self._vector_cache: ResponseCache[tuple[list[float], Usage]] | None = (
            ResponseCache(limits.cache_entries, metrics) if caching and spec.embedding else None)
        # A synchronous function has one row at a time: nothing to batch with.
        batch = limits.batch_size if settings.asynchronous else 1
        self._batcher = EmbeddingBatcher(
            self._send_embeddings, max_inputs=batch, max_tokens=limits.batch_max_tokens,
            linger=limits.batch_linger) if spec.embedding is not None and batch > 1 else None
        self._log_retry = SampledLog()
        self._warn_if_limit_outlasts_budget(batch)

    @property
    def pacer(self) -> Pacer:
        """The shared cooldown and limits of this model function."""
        return self._pacer

    def _warn_if_limit_outlasts_budget(self, batch: int) -> None:
        rpm = self._spec.throughput.requests_per_minute
        settings = self._settings
        if rpm is None:
            return
        wait = settings.max_concurrent / batch * 60.0 / rpm
        if wait > settings.row_budget:
            _LOGGER.warning(
                "model %s: 'requests-per-minute' = %d with %d rows in flight per instance "
                "(max-concurrent-operations) lets a row wait up to %.0fs for its turn, more than "
                "its time budget of %.0fs (the operator timeout less a margin); such rows fail "
                "with that reason. Lower max-concurrent-operations to at most %d, or raise the "
                "timeout.", self._spec.name, rpm, settings.max_concurrent, wait,
                settings.row_budget, max(1, int(rpm / 60.0 * settings.row_budget * batch)))

    # --- chat ---------------------------------------------------------------------------------

    async def chat(self, messages: list[dict[str, Any]], deadline: float
                   ) -> tuple[ChatAnswer, bool]:
        """The completion of ``messages``, and whether it was shared (cache or another row's
        identical request in flight)."""
        tokens = self._chat_tokens(messages) if self._spec.throughput.tokens_per_minute else 0

        def call() -> Awaitable[ChatAnswer]:
            return self.call(lambda client, timeout: client.chat(messages, timeout), deadline,
                             tokens)

        if self._chat_cache is None:
            return await call(), False
        return await self._chat_cache.get(_chat_key(messages), call)

    def forget_chat(self, messages: list[dict[str, Any]]) -> None:
        """Drops a kept answer to ``messages`` that turned out unusable (e.g. invalid JSON)."""
        if self._chat_cache is not None:
            self._chat_cache.discard(_chat_key(messages))

    def _chat_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Estimated tokens of a chat request: its messages, plus max_tokens (or
        DEFAULT_COMPLETION_TOKENS) for each of its n choices."""
        counter = self._tokens()
        prompt = sum(counter.count(_message_text(m.get("content"))) + TOKENS_PER_MESSAGE
                     for m in messages)
        body = self._spec.chat.body if self._spec.chat is not None else {}
        completion = int(body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS)
        return prompt + completion * int(body.get("n") or 1)

    # --- embeddings ---------------------------------------------------------------------------

    async def embed(self, text: str, deadline: float) -> tuple[list[float], Usage, bool]:
        """The vector of ``text``, the row's usage, and whether the answer was shared."""
        if self._vector_cache is None:
            vector, usage = await self._embed(text, deadline)
            return vector, usage, False
        (vector, usage), shared = await self._vector_cache.get(
            text, lambda: self._embed(text, deadline))
        return vector, usage, shared

    async def _embed(self, text: str, deadline: float) -> tuple[list[float], Usage]:
        if self._batcher is not None:
            vector, usage = await self._batcher.submit(text, self._count(text), deadline)
        else:
            tokens = self._count(text) if self._spec.throughput.tokens_per_minute else 0
            answer = await self._send_embeddings([text], deadline, tokens)
            vector, usage = answer.vectors[0], answer.usage
        embedding = self._spec.embedding
        if embedding is not None and embedding.dimension is not None \
                and len(vector) != embedding.dimension:
            raise PermanentModelCallError(
                f"the model returned a vector of {len(vector)} values, not the "
                f"{embedding.dimension} of option 'dimension' (does model {self._spec.model} "
                f"support 'dimension' = {embedding.dimension}?)")
        return vector, usage

    async def _send_embeddings(self, texts: list[str], deadline: float,
                               tokens: int) -> EmbeddingAnswer:
        return await self.call(lambda client, timeout: client.embed(texts, timeout), deadline,
                               tokens)

    # --- one request with its retries -----------------------------------------------------------

    async def call(self, send: Send[_A], deadline: float, tokens: int = 0) -> _A:
        """One request with its retries, all inside ``deadline``.

        Args:
            send: makes the request with the client and a timeout in seconds.
            deadline: monotonic time by which the request's rows must be done.
            tokens: its estimated tokens (for 'tokens-per-minute').

        Raises:
            ModelCallError: it failed for good, or the row's time budget ran out.
        """
        last: list[ModelCallError | None] = [None]
        resume = [0.0]

        def on_retry(state: Any) -> None:
            self._metrics.inc("retries")
            exc = state.outcome.exception() if state.outcome is not None else None
            last[0] = exc if isinstance(exc, ModelCallError) else last[0]
            resume[0] = time.monotonic() + (state.upcoming_sleep or 0.0)
            self._log_retry.warning("model %s: attempt %d failed (%s); retrying in %.2fs",
                                    self._spec.name, state.attempt_number,
                                    exc.described() if isinstance(exc, ModelCallError) else exc,
                                    state.upcoming_sleep)

        # Most requests succeed at once: the first attempt runs without building tenacity's
        # per-request retry state (a measurable share of a row's CPU); its retryable failure is
        # handed to tenacity as the first attempt's outcome, so waits and counts are unchanged.
        try:
            return await self._attempt(send, deadline, tokens, 0.0)
        except OutOfBudget as out:
            raise self._out_of_budget(out, None) from None
        except _BudgetCut:
            raise RetryableModelCallError("request timed out") from None
        except RetryableModelCallError as exc:
            if self._policy.max_retries == 0:
                raise
            first: RetryableModelCallError | None = exc
        retrying = self._policy.to_retrying(budget=max(deadline - time.monotonic(), 0.0),
                                            sleep=self._sleep, on_retry=on_retry)
        try:
            async for attempt in retrying:
                with attempt:
                    if first is not None:
                        failed, first = first, None
                        raise failed
                    return await self._attempt(send, deadline, tokens, resume[0])
        except OutOfBudget as out:
            raise self._out_of_budget(out, last[0]) from None
        except _BudgetCut:
            if last[0] is None:
                raise RetryableModelCallError("request timed out") from None
            # The row's story is its last answer from the service, then the budget's end.
            raise self._out_of_budget(OutOfBudget("the answer to a retry"), last[0]) from None
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _attempt(self, send: Send[_A], deadline: float, tokens: int,
                       not_before: float) -> _A:
        ticket = await self._pacer.acquire(deadline, tokens, not_before)
        ok = throttled = False
        retry_after: float | None = None
        client = self._get_client()
        remaining = max(deadline - time.monotonic(), 0.001)
        request_timeout = self._spec.connection.request_timeout
        # The SDK's timeout is the request's own; when the row's budget ends first, the SDK
        # waits a little longer so that the cut is always ours (_BudgetCut) and is told as such.
        cut_by_budget = remaining <= request_timeout
        timeout = remaining + 1.0 if cut_by_budget else request_timeout
        self._metrics.inc("requests")
        started = time.monotonic()
        self._metrics.in_flight += 1
        try:
            # The whole attempt (connecting and queueing included) ends with the row's budget.
            result = await asyncio.wait_for(send(client, timeout), remaining)
            ok = True
        except asyncio.TimeoutError:
            self._metrics.inc("failures")
            if cut_by_budget:
                raise _BudgetCut() from None
            raise RetryableModelCallError("request timed out") from None
        except ModelCallError as exc:
            self._metrics.inc("failures")
            throttled, retry_after = exc.status == 429, exc.retry_after
            raise
        finally:
            self._metrics.in_flight -= 1
            self._metrics.observe_latency(time.monotonic() - started)
            self._pacer.settle(ticket, ok=ok, throttled=throttled, retry_after=retry_after)
        self._metrics.inc("tokens-in", result.usage.prompt_tokens or 0)
        self._metrics.inc("tokens-out", result.usage.completion_tokens or 0)
        return result

    def _out_of_budget(self, out: OutOfBudget, last: ModelCallError | None) -> ModelCallError:
        """The row's error when its budget ran out waiting: its last HTTP error, if any, with
        the reason it was not tried again."""
        reason = (f"the row's time budget ({self._settings.row_budget:g}s, inside the operator "
                  f"timeout) ran out waiting for {out.waiting_for}")
        if last is None:
            return RetryableModelCallError(reason)
        return type(last)(f"{last}; then {reason}", status=last.status, headers=last.headers,
                          request_id=last.request_id, url=last.url)

    # --- resources ------------------------------------------------------------------------------

    def _get_client(self) -> AsyncModelClient:
        if self._client is None:
            self._client = AsyncModelClient(self._spec,
                                            max_connections=self._settings.max_concurrent)
        return self._client

    def _tokens(self) -> Any:
        if self._counter is None:
            from .tokens import TokenCounter

            self._counter = TokenCounter.for_model(self._spec.model, self._spec.provider.name)
        return self._counter

    def _count(self, text: str) -> int:
        return int(self._tokens().count(text))

    async def aclose(self) -> None:
        """Cancels batches and shared calls still in flight and closes the HTTP client."""
        if self._batcher is not None:
            await self._batcher.aclose()
        for cache in (self._chat_cache, self._vector_cache):
            if cache is not None:
                await cache.aclose()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _chat_key(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str)


def _message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
