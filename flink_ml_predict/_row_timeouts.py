"""One timer thread for every row timeout of PyFlink's async operations in this process.

PyFlink 2.3's async operations (the async scalar function's, and the DataStream
``AsyncFunction``'s) start a ``threading.Timer`` -- a new OS thread -- for every row, to fail the
row after the operator's timeout (``ResultHandler.register_timeout`` in
``pyflink/fn_execution/datastream/process/async_function/operation.py``). At hundreds of rows per
second that thread start, and its GIL hand-offs, cost the Python worker measurable CPU per row.
:func:`install_shared_row_timeouts` makes the handlers schedule the same callback at the same
moment on one shared daemon thread (a heap of deadlines), cancelled the same way when the row
completes (``ResultHandler`` calls ``self._timer.cancel()``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

_LOGGER = logging.getLogger(__name__)
_MARK = "_flink_ml_predict_shared_timer"


class Deadline:
    """One scheduled callback of :class:`SharedTimer`; ``cancel()`` as ``threading.Timer``'s."""

    __slots__ = ("when", "callback", "cancelled", "_timer")

    def __init__(self, when: float, callback: Callable[[], Any], timer: SharedTimer) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self._timer = timer

    def cancel(self) -> None:
        """The callback will not run (unless it is running already)."""
        if not self.cancelled:
            self.cancelled = True
            self._timer._cancelled_one()


class SharedTimer:
    """Runs callbacks at their deadlines on one daemon thread (started on first use)."""

    COMPACT_AT = 4096
    """Cancelled deadlines kept in the heap before it is rebuilt without them (when they are also
    more than half of it): rows complete long before their timeout, so most entries are cancelled
    ones."""

    def __init__(self, name: str = "flink-ml-predict-row-timeouts") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cancelled = 0

    def schedule(self, delay: float, callback: Callable[[], Any]) -> Deadline:
        """Calls ``callback`` on the timer thread ``delay`` seconds from now, unless cancelled."""
        deadline = Deadline(time.monotonic() + delay, callback, self)
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            if self._heap[0][2] is deadline:
                self._changed.notify()
        return deadline

    def pending(self) -> int:
        """Deadlines neither cancelled nor run yet."""
        with self._changed:
            return sum(1 for _, _, d in self._heap if not d.cancelled)

    def size(self) -> int:
        """Entries in the heap, cancelled ones included (bounded by compaction)."""
        with self._changed:
            return len(self._heap)

    def _cancelled_one(self) -> None:
        with self._changed:
            self._cancelled += 1
            if self._cancelled > self.COMPACT_AT and 2 * self._cancelled > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _next_due(self) -> Deadline:
        with self._changed:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                    self._cancelled = max(self._cancelled - 1, 0)
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                self._changed.wait(self._heap[0][0] - now if self._heap else None)

    def _run(self) -> None:
        while True:
            due = self._next_due()
            if due.cancelled:
                continue
            try:
                due.callback()
            except Exception:  # noqa: BLE001 - a failing callback must not stop the others
                _LOGGER.exception("a row timeout callback failed")


ROW_TIMEOUTS = SharedTimer()
"""The timer of every row timeout in this process."""


def install_shared_row_timeouts() -> bool:
    """Makes PyFlink's async result handlers use :data:`ROW_TIMEOUTS` instead of a thread per
    row; returns True once installed."""
    try:
        from pyflink.fn_execution.datastream.process.async_function import operation
    except ImportError:  # a PyFlink without async functions
        return False
    cls = operation.ResultHandler
    if getattr(cls.register_timeout, _MARK, False):
        return True

    def register_timeout(self: Any, timeout: float) -> None:
        # ResultHandler._process_results cancels it when the row completes.
        self._timer = ROW_TIMEOUTS.schedule(timeout, self._timer_triggered)

    setattr(register_timeout, _MARK, True)
    register_timeout.__doc__ = cls.register_timeout.__doc__
    cls.register_timeout = register_timeout
    _LOGGER.debug("installed the shared row-timeout timer")
    return True
