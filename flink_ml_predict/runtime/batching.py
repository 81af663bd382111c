"""Embedding batches: the rows in flight in one worker share embeddings requests.

Rows (one ``predict()`` coroutine each, all on the worker's event loop) hand their text to an
:class:`EmbeddingBatcher`. A batch goes as soon as it is full (``batch-size`` inputs, or the next
row would take it over ``batch-max-tokens``), or ``batch-linger`` after its first row, so a lone
row is not held back. Each row gets the vector at its own index (the response's count and indexes
are checked when it is read).

Failures: a retryable failure retries the whole batch (in the caller's retry loop, inside the
earliest deadline of its rows). A permanent failure that may be caused by one input (400, 413,
422: DashScope rejects a whole batch for one bad input) splits the batch in halves that are sent
again, down to single rows, so only the bad row fails and follows its strategy. Other failures
(401, 403, 404, an exhausted budget) fail every row of the batch with the same error.

Usage: the service reports one usage per request. Each row is given a share of it in proportion
to its own token count (counted locally with the model's tokenizer); the shares are whole numbers
that add up to the reported total (largest remainders), so summing the usage columns of the rows
gives what the service counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ..errors import ModelCallError, PermanentModelCallError
from .responses import EmbeddingAnswer, Usage

_LOGGER = logging.getLogger(__name__)

SPLIT_STATUSES = frozenset({400, 413, 422})
"""Permanent statuses that one input can cause: the batch is split to find it."""

SendBatch = Callable[[list[str], float, int], Awaitable[EmbeddingAnswer]]
"""Sends one embeddings request (texts, deadline, estimated tokens) with its retries."""


@dataclass
class _Row:
    text: str
    tokens: int
    deadline: float
    future: asyncio.Future[tuple[list[float], Usage]] = field(repr=False)


def split_counts(total: int | None, weights: Sequence[int]) -> list[int | None]:
    """``total`` in whole shares proportional to ``weights`` that add up to ``total``.

    Largest remainders; equal shares when every weight is 0; None for each share when the total
    is unknown.

    Example:
        >>> split_counts(10, [1, 1, 2])
        [3, 2, 5]
    """
    if total is None:
        return [None] * len(weights)
    weights = [max(w, 0) for w in weights]
    if not any(weights):
        weights = [1] * len(weights)
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (shares[i] - exact[i], i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return list(shares)


def split_usage(usage: Usage, weights: Sequence[int]) -> list[Usage]:
    """One usage per row of a batch: every field split by :func:`split_counts`."""
    columns = [split_counts(value, weights) for value in (usage.prompt_tokens,
                                                          usage.completion_tokens,
                                                          usage.total_tokens)]
    return [Usage(p, c, t) for p, c, t in zip(*columns, strict=True)]


class EmbeddingBatcher:
    """Coalesces the embeddings rows of one worker into requests.

    Args:
        send: sends one request with its retries (the call pipeline's retry loop).
        max_inputs: most rows in one request (``batch-size``).
        max_tokens: most input tokens summed over one request (None: no cap).
        linger: seconds a batch that is not full waits for more rows.
    """

    def __init__(self, send: SendBatch, *, max_inputs: int, max_tokens: int | None,
                 linger: float) -> None:
        if max_inputs < 2:
            raise ValueError("a batcher needs max_inputs >= 2; send single rows directly")
        self._send = send
        self._max_inputs = max_inputs
        self._max_tokens = max_tokens
        self._linger = linger
        self._open: list[_Row] = []
        self._open_tokens = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, text: str, tokens: int, deadline: float) -> tuple[list[float], Usage]:
        """The vector of ``text`` and its share of the request's usage.

        Args:
            text: the row's input.
            tokens: its token count (for the token cap and the usage share).
            deadline: clock time by which the row must be done.

        Raises:
            ModelCallError: the row's request failed (after splitting, if it could be the row's).
        """
        loop = asyncio.get_running_loop()
        row = _Row(text, tokens, deadline, loop.create_future())
        cap = self._max_tokens
        if self._open and cap is not None and self._open_tokens + tokens > cap:
            self._flush()
        self._open.append(row)
        self._open_tokens += tokens
        if len(self._open) >= self._max_inputs or (cap is not None and self._open_tokens >= cap):
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger, self._flush)
        return await row.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, self._open, self._open_tokens = self._open, [], 0
        if rows:
            task = asyncio.ensure_future(self._run(rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, rows: list[_Row]) -> None:
        try:
            await self._send_rows(rows)
        except asyncio.CancelledError:  # closing: no row may hang
            for row in rows:
                row.future.cancel()
            raise
        except Exception as exc:  # our own bug: every row of the batch raises it, unmapped
            for row in rows:
                if not row.future.done():
                    row.future.set_exception(exc)

    async def _send_rows(self, rows: list[_Row]) -> None:
        try:
            answer = await self._send([r.text for r in rows], min(r.deadline for r in rows),
                                      sum(r.tokens for r in rows))
        except PermanentModelCallError as exc:
            if len(rows) > 1 and exc.status in SPLIT_STATUSES:
                _LOGGER.debug("embeddings batch of %d rows failed (%s); sending it in halves",
                              len(rows), exc)
                middle = len(rows) // 2
                await asyncio.gather(self._send_rows(rows[:middle]),
                                     self._send_rows(rows[middle:]))
                return
            _fail(rows, exc)
            return
        except ModelCallError as exc:
            _fail(rows, exc)
            return
        shares = split_usage(answer.usage, [r.tokens for r in rows])
        for row, vector, usage in zip(rows, answer.vectors, shares, strict=True):
            if not row.future.done():  # a row cancelled meanwhile no longer waits
                row.future.set_result((vector, usage))

    async def aclose(self) -> None:
        """Cancels the batches still being sent (their rows get CancelledError)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _fail(rows: list[_Row], exc: ModelCallError) -> None:
    for row in rows:
        if not row.future.done():
            row.future.set_exception(exc)
