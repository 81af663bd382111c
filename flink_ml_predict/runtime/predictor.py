"""One row in, zero or more output rows out: the per-row pipeline of a model call.

Order per row: the row's documents (document-column; null: skipped) -> the text from the other
INPUT values (prompt template or fixed form; all null: skipped) -> token limits (context
overflow, embeddings max-tokens) -> the call pipeline (:mod:`.pipeline`: cache, embedding
batches, retries, shared cooldown and limits, client) -> a structured answer validated (re-asked
when it does not fit) -> rows. Failures follow the model's strategy: FAILOVER raises (the Flink
job fails), IGNORE emits the row's error in the metadata columns, or drops the row with a warning
and a metric when there are none. Nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..columns import Role
from ..documents import Documents
from ..errors import AnswerFormatError, ModelCallError, PermanentModelCallError
from ..model import CallSettings, ModelSpec
from ..options import OutputFormat, Strategy, Task
from ..structured import InvalidAnswer
from .metrics import Metrics
from .pipeline import CallPipeline
from .pipeline import SampledLog as _Sampled
from .responses import ChatAnswer, Usage

_LOGGER = logging.getLogger(__name__)

__all__ = ["CallSettings", "Predictor"]


def _unshared(usage: Usage, shared: bool) -> Usage:
    """A row answered by another row's request (cache, shared call) spent no tokens of its own:
    its usage columns are 0, so summing them gives what the service counted."""
    if not shared:
        return usage
    return Usage(*(None if v is None else 0
                   for v in (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)))


def _usage_cells(usage: Usage) -> dict[Role, Any]:
    return {Role.PROMPT_TOKENS: usage.prompt_tokens,
            Role.COMPLETION_TOKENS: usage.completion_tokens,
            Role.TOTAL_TOKENS: usage.total_tokens}


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
        self._pipeline = CallPipeline(spec, settings, metrics=self._metrics, sleep=sleep)
        self._counter: Any = None
        self._prompt = spec.prompt
        self._chat = spec.chat
        self._system = self._system_messages()
        self._documents = self._chat.documents if self._chat is not None else None
        self._log_null = _Sampled()
        self._log_overflow = _Sampled()
        self._log_dropped = _Sampled()
        self._log_retry = _Sampled()
        # Request slots, when PyFlink's queue holds more rows than may have requests out.
        self._slots = (asyncio.Semaphore(settings.max_concurrent)
                       if settings.asynchronous and settings.queue_factor > 1 else None)

    @property
    def metrics(self) -> Metrics:
        """The counters of this predictor."""
        return self._metrics

    @property
    def pipeline(self) -> CallPipeline:
        """Where the requests go: cache, batches, retries, cooldown and limits, client."""
        return self._pipeline

    def _system_messages(self) -> list[dict[str, Any]]:
        chat = self._chat
        if chat is None:
            return []
        prompt = chat.system_prompt
        if chat.structured is not None and chat.output_format is OutputFormat.JSON_OBJECT:
            prompt = f"{prompt}\n\n{chat.structured.instructions()}"
        return [{"role": "system", "content": prompt}]

    # --- input ------------------------------------------------------------------------------

    def _tokens(self) -> Any:
        if self._counter is None:
            from .tokens import TokenCounter

            self._counter = TokenCounter.for_model(self._spec.model, self._spec.provider.name)
        return self._counter

    def _fit(self, text: str) -> str | None:
        """The text to send after token limits, or None when the row is skipped."""
        limit = self._spec.context
        if limit is not None:
            counter = self._tokens()
            count = counter.count(text)
            if count > limit.max_tokens:
                if limit.action.logs:
                    self._log_overflow.warning(
                        "model %s: input of %d tokens exceeds max-context-size %d: %s",
                        self._spec.name, count, limit.max_tokens, limit.action)
                if limit.action.skips:
                    self._metrics.inc("rows-skipped")
                    return None
                cut = counter.truncate_tail if limit.action.keeps_head else counter.truncate_head
                text = cut(text, limit.max_tokens)
                self._metrics.inc("rows-truncated")
        embedding = self._spec.embedding
        if embedding is not None and embedding.max_input_tokens is not None:
            text = self._tokens().truncate_tail(text, embedding.max_input_tokens)
        return text

    async def _chat_rows(self, text: str, deadline: float,
                         documents: Documents | None = None) -> list[tuple[Any, ...]]:
        # Seed 004's order: the system prompt, the documents' system messages, the user message.
        messages = [*self._system, *(documents.messages() if documents else ()),
                    {"role": "user", "content": text}]
        asked = len(messages)
        chat = self._chat
        assert chat is not None
        re_asks = self._spec.failure.output_retries
        while True:
            answer, shared = await self._pipeline.chat(messages, deadline)
            if chat.structured is None:
                return self._answer_rows([[c.content] for c in answer.choices], answer, shared)
            try:
                values = [chat.structured.parse(c.content) for c in answer.choices]
            except InvalidAnswer as invalid:
                self._pipeline.forget_chat(messages)  # an unusable answer is not kept
                if re_asks <= 0 or time.monotonic() >= deadline:
                    raise AnswerFormatError(invalid.describe()) from None
                re_asks -= 1
                self._metrics.inc("retries")
                self._log_retry.warning("model %s: %s; asking again", self._spec.name,
                                        invalid.describe())
                messages = [*messages[:asked], {"role": "assistant", "content": invalid.raw},
                            {"role": "user", "content": _repair_request(invalid)}]
                continue
            return self._answer_rows(values, answer, shared)

    def _answer_rows(self, values: list[list[Any]], answer: ChatAnswer,
                     shared: bool) -> list[tuple[Any, ...]]:
        usage = _usage_cells(_unshared(answer.usage, shared))
        return [self._spec.outputs.cells(value, {**usage, Role.FINISH_REASON: c.finish_reason,
                                                 Role.TOOL_CALLS: c.tool_calls})
                for value, c in zip(values, answer.choices, strict=True)]

    async def _embedding_rows(self, text: str, deadline: float) -> list[tuple[Any, ...]]:
        vector, usage, shared = await self._pipeline.embed(text, deadline)
        return [self._spec.outputs.cells([vector], _usage_cells(_unshared(usage, shared)))]

    # --- output -------------------------------------------------------------------------------

    async def predict(self, *values: Any) -> list[tuple[Any, ...]]:
        """The output rows for one input row (each a tuple in OUTPUT column order).

        Args:
            values: the row's INPUT values, in INPUT column order.

        Raises:
            ModelCallError: when the row failed and the strategy says FAILOVER.
        """
        documents = None
        if self._documents is not None:
            try:
                documents, values = self._documents.for_row(values)
            except ValueError as exc:
                return self._fail(PermanentModelCallError(str(exc)))
            if documents is None:
                self._metrics.inc("rows-skipped")
                self._log_null.warning("model %s: document-column %s is null; row skipped",
                                       self._spec.name, self._documents.column_name)
                return []
        text = self._prompt.build(values)
        if text is None:
            self._metrics.inc("rows-skipped")
            self._log_null.warning("model %s: input is null; row skipped", self._spec.name)
            return []
        fitted = self._fit(text)
        if fitted is None:
            return []
        slots = self._slots
        if slots is not None:
            # FIFO; every row ahead holds a slot for at most its own budget, and Flink's operator
            # timeout is the queue's depth times that (rewrite.apply_settings).
            await slots.acquire()
        deadline = time.monotonic() + self._settings.row_budget  # the row's work from here
        try:
            if self._spec.task is Task.CHAT:
                return await self._chat_rows(fitted, deadline, documents)
            return await self._embedding_rows(fitted, deadline)
        except ModelCallError as exc:
            return self._fail(exc)
        finally:
            if slots is not None:
                slots.release()

    def _fail(self, exc: ModelCallError) -> list[tuple[Any, ...]]:
        self._metrics.inc("rows-failed")
        failure = self._spec.failure
        if failure.fallback is Strategy.FAILOVER:
            raise type(exc)(
                f"ML_PREDICT with model {self._spec.name} failed "
                f"(error-handling-strategy {failure.strategy}): {exc.described()}",
                status=exc.status, headers=exc.headers, request_id=exc.request_id,
                url=exc.url) from exc
        outputs = self._spec.outputs
        if outputs.keeps_errors:
            return [outputs.cells(None, {
                Role.ERROR_STRING: str(exc), Role.HTTP_STATUS_CODE: exc.status,
                Role.HTTP_HEADERS_MAP: dict(exc.headers) if exc.status is not None else None})]
        self._metrics.inc("rows-dropped")
        self._log_dropped.warning(
            "model %s: row dropped under IGNORE (declare the error-string column in OUTPUT to "
            "keep it): %s", self._spec.name, exc.described())
        return []

    async def aclose(self) -> None:
        """Cancels what is still in flight and closes the HTTP client."""
        await self._pipeline.aclose()


def _repair_request(invalid: InvalidAnswer) -> str:
    return (f"That answer cannot be used: {invalid.reason}. Reply again with only the corrected "
            "JSON object, matching the required schema exactly.")
