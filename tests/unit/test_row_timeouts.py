"""The shared row-timeout timer (flink_ml_predict/_row_timeouts.py) that replaces PyFlink's
thread-per-row ``threading.Timer``: callbacks run at their deadline, a cancelled one never runs,
cancelled entries do not pile up, and PyFlink's own ResultHandler times a row out through it."""

from __future__ import annotations

import threading

from pyflink.fn_execution.datastream.process.async_function import operation

from flink_ml_predict._row_timeouts import Deadline, SharedTimer, install_shared_row_timeouts

WAIT_S = 10.0  # an upper bound for a callback due now, not a synchronisation sleep


def test_callbacks_run_in_deadline_order_and_a_cancelled_one_never_runs() -> None:
    timer = SharedTimer("test-timer")
    ran: list[str] = []
    done = threading.Event()
    with timer._changed:  # (a re-entrant lock) the timer thread cannot run it before cancel()
        timer.schedule(0.0, lambda: ran.append("cancelled")).cancel()
    timer.schedule(0.02, lambda: (ran.append("second"), done.set()))
    timer.schedule(0.01, lambda: ran.append("first"))
    assert done.wait(WAIT_S)
    assert ran == ["first", "second"]
    assert timer.pending() == 0


def test_a_failing_callback_does_not_stop_the_timer() -> None:
    timer = SharedTimer("test-timer")
    done = threading.Event()
    timer.schedule(0.0, lambda: 1 / 0)
    timer.schedule(0.01, done.set)
    assert done.wait(WAIT_S)


def test_cancelled_deadlines_are_compacted() -> None:
    timer = SharedTimer("test-timer")
    for _ in range(3 * SharedTimer.COMPACT_AT):
        timer.schedule(3600.0, lambda: None).cancel()
    assert timer.size() <= SharedTimer.COMPACT_AT + 1
    assert timer.pending() == 0


class _Future:
    def __init__(self) -> None:
        self.results: list[object] = []
        self.done = threading.Event()

    def complete(self, result: object) -> None:
        self.results.append(result)
        self.done.set()


def test_pyflink_result_handlers_time_out_through_the_shared_timer() -> None:
    assert install_shared_row_timeouts()
    before = threading.active_count()
    future = _Future()
    handler = operation.ResultHandler("F", lambda record: [("timed out", record)],
                                      lambda exc: None, "row-1", future)
    handler.register_timeout(0.01)
    assert isinstance(handler._timer, Deadline)
    assert future.done.wait(WAIT_S)
    assert future.results == [[("timed out", "row-1")]]
    answered = _Future()
    handler = operation.ResultHandler("F", lambda record: [("timed out", record)],
                                      lambda exc: None, "row-2", answered)
    handler.register_timeout(3600)
    handler.complete([("answer", "row-2")])  # cancels its deadline
    assert answered.results == [[("answer", "row-2")]]
    assert handler._timer is None
    assert threading.active_count() <= before + 1  # the timer thread at most, no thread per row
