"""Progress of the model calls while a job runs, and a summary when it ends.

Per model: rows done, requests (and requests per second), requests in flight, retries, failures,
tokens, and the rows that were truncated, skipped, dropped or failed, with why (from the model's
definition). Where the figures come from:

* the embedded mini-cluster runs the Python functions in this process ("loopback"), so their
  counters are read here (:data:`flink_ml_predict.runtime.metrics.LOCAL`);
* a cluster (``--jobmanager``) reports them through its REST API (``/jobs/<job>/vertices/<vertex>/
  subtasks/metrics``, summed over subtasks), which only has them while the job runs and refreshes
  them every ``metrics.fetcher.update-interval``: the summary shows the last figures read.

A reader thread reads them every ``period`` seconds; nothing is added to the per-row path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .console import Console

_LOGGER = logging.getLogger(__name__)

Figures = dict[str, dict[str, int]]
"""model name -> counter name (``rows``, ``requests``, ..., ``in-flight``) -> value"""

_SCOPE = ".flink_ml_predict."
_NAMES = ("rows", "requests", "failures", "retries", "rows-skipped", "rows-truncated",
          "rows-failed", "rows-dropped", "tokens-in", "tokens-out", "in-flight")


class FigureSource(Protocol):
    """Where the figures of one job come from."""

    def read(self) -> Figures:
        """The figures now ({} when none are known yet)."""
        ...

    def close(self) -> None:
        """The job has ended."""
        ...


class LocalSource:
    """Figures of the functions running in this process (the mini-cluster's loopback worker)."""

    def __init__(self) -> None:
        from .runtime.metrics import LOCAL

        self._local = LOCAL

    def read(self) -> Figures:
        return self._local.snapshot()

    def close(self) -> None:
        self._local.clear()  # the next job's functions start from zero


class RestSource:
    """Figures of one job from a cluster's REST API (the last ones read while it ran)."""

    def __init__(self, rest_url: str, job_id: str, timeout: float = 5.0) -> None:
        self._base = f"{rest_url.rstrip('/')}/jobs/{job_id}"
        self._timeout = timeout
        self._ids: dict[str, list[str]] = {}  # vertex -> our metric ids
        self._last: Figures = {}

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self._base + path, timeout=self._timeout) as response:
            return json.loads(response.read() or b"null")

    def read(self) -> Figures:
        try:
            figures = self._read()
        except (OSError, ValueError) as exc:  # the job is gone, or the REST API is busy
            _LOGGER.debug("reading metrics from %s failed: %s", self._base, exc)
            return self._last
        if figures:
            self._last = figures
        return self._last

    def _read(self) -> Figures:
        figures: Figures = {}
        for vertex in (self._get("") or {}).get("vertices", []):
            if "Python" not in vertex.get("name", ""):
                continue
            path = f"/vertices/{vertex['id']}"
            ids = self._ids.get(vertex["id"])
            if not ids:
                # The vertex lists '<subtask>.<operator>.flink_ml_predict.<model>.<counter>'; the
                # aggregate over subtasks is asked for without the subtask.
                listed = {m["id"].partition(".")[2] for m in self._get(f"{path}/metrics") or []}
                ids = sorted(i for i in listed if _parse_id(i))
                if not ids:
                    continue  # not reported yet
                self._ids[vertex["id"]] = ids
            query = urllib.parse.quote(",".join(ids), safe=",[]")
            for entry in self._get(f"{path}/subtasks/metrics?get={query}&agg=sum") or []:
                parsed = _parse_id(entry.get("id", ""))
                if parsed is not None and entry.get("sum") is not None:
                    model, name = parsed
                    counts = figures.setdefault(model, dict.fromkeys(_NAMES, 0))
                    counts[name] += int(float(entry["sum"]))
        return figures

    def close(self) -> None:
        pass


def _parse_id(metric_id: str) -> tuple[str, str] | None:
    """(model, counter) of 'PythonAsyncCalc[3].flink_ml_predict.<model>.<counter>', else None."""
    _, found, rest = metric_id.partition(_SCOPE)
    model, _, name = rest.rpartition(".")
    return (model, name) if found and model and name in _NAMES else None


@dataclass
class _Job:
    where: str
    job_id: str
    source: FigureSource
    started: float = field(default_factory=time.monotonic)
    figures: Figures = field(default_factory=dict)
    requests: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20))

    def update(self) -> Figures:
        self.figures = self.source.read() or self.figures
        total = sum(f.get("requests", 0) for f in self.figures.values())
        self.requests.append((time.monotonic(), total))
        return self.figures

    def rate(self) -> float:
        """Requests per second over the last few readings."""
        if len(self.requests) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.requests[0], self.requests[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class JobMonitor:
    """The command line's :class:`~flink_ml_predict.runner.JobWatcher`: a live line per model on a
    terminal, a summary after each job, and what was running when Ctrl-C came.

    Args:
        console: where lines go.
        source: the figures of a job, from its id (LocalSource or RestSource).
        models: the models of the script by name (their definitions explain skipped rows).
        quiet: no progress, no summary.
        remote: the figures come from a cluster (said in the summary).
        period: seconds between readings.
    """

    def __init__(self, console: Console, source: Callable[[str], FigureSource], *,
                 models: Callable[[], Mapping[str, Any]] = dict, quiet: bool = False,
                 remote: bool = False, period: float = 0.5) -> None:
        self._console = console
        self._source = source
        self._models = models
        self._quiet = quiet
        self._remote = remote
        self._period = period
        self.current: _Job | None = None
        self._interrupted: _Job | None = None

    @contextlib.contextmanager
    def watch(self, where: str, job_client: Any, *, live: bool) -> Iterator[None]:
        """Follows one job while the runner waits for it."""
        job_id = str(job_client.get_job_id())
        job = _Job(where, job_id, self._source(job_id))
        self.current = self._interrupted = job  # kept if Ctrl-C comes before the try below
        stop = threading.Event()
        show = live and self._console.live and not self._quiet
        reader = None
        if show or self._remote:  # a cluster's figures are gone when the job is
            reader = threading.Thread(target=self._follow, args=(job, stop, show),
                                      name="flink-ml-predict-progress", daemon=True)
            reader.start()
        outcome = "finished"
        try:
            yield
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        except BaseException:
            outcome = "failed"
            raise
        finally:
            stop.set()
            if reader is not None:
                reader.join()
            self._console.end_status()
            job.update()
            job.source.close()
            self.current = None
            if outcome != "interrupted":
                self._interrupted = None
            if outcome != "interrupted" and not self._quiet:
                self._console.message(self.summary(job, outcome))

    def _follow(self, job: _Job, stop: threading.Event, show: bool) -> None:
        while not stop.wait(self._period):
            figures = job.update()
            if show and figures:
                self._console.status([self._live_line(m, f, job) for m, f in figures.items()])

    def _live_line(self, model: str, f: Mapping[str, int], job: _Job) -> str:
        parts = [f"{model}: rows {f['rows']}", f"{job.rate():.1f} req/s",
                 f"in flight {f['in-flight']}", f"retries {f['retries']}",
                 f"failures {f['failures']}", f"tokens {f['tokens-in']}/{f['tokens-out']}"]
        parts += [f"{word} {n}" for word, n, _ in _outcomes(f) if n]
        return " | ".join(parts)

    def summary(self, job: _Job, outcome: str) -> str:
        """The lines printed when a job has ended."""
        seconds = time.monotonic() - job.started
        lines = [f"{job.where}: job {job.job_id} {outcome} after {seconds:.1f} s"
                 + (" (figures as the cluster last reported them)" if self._remote else "")]
        models = self._models()
        for model, f in sorted(job.figures.items()):
            lines.append(
                f"  model {model}: {_count(f['rows'], 'row')} "
                f"({f['rows'] / max(seconds, 1e-3):.1f}/s), {_count(f['requests'], 'request')}, "
                f"{_count(f['retries'], 'retry', 'retries')}, {_count(f['failures'], 'failure')}, "
                f"tokens {f['tokens-in']} in / {f['tokens-out']} out")
            spec = models.get(model)
            for word, n, counter in _outcomes(f):
                if n:
                    lines.append(f"    {_count(n, 'row')} {word}: {_why(counter, spec)}")
        return "\n".join(lines)

    def interrupted(self, *, cancelled: bool) -> str | None:
        """After Ctrl-C during a job: one line saying what was running, how far it got and
        whether it was cancelled; None when no job was running."""
        job = self._interrupted
        if job is None:
            return None
        rows = ", ".join(f"{_count(f['rows'], 'row')} done by model {m}"
                         for m, f in sorted(job.figures.items())) or "no model rows done"
        if cancelled:
            return f"interrupted: cancelled job {job.job_id} of {job.where} ({rows})"
        return (f"interrupted: job {job.job_id} of {job.where} could not be cancelled (it had "
                f"ended, or its cluster did not answer) ({rows})")


def _outcomes(f: Mapping[str, int]) -> list[tuple[str, int, str]]:
    """(word, rows, counter) of the rows that did not simply succeed; a dropped row is also
    counted as failed by the functions, and shown once, as dropped."""
    return [("truncated", f["rows-truncated"], "rows-truncated"),
            ("skipped", f["rows-skipped"], "rows-skipped"),
            ("dropped", f["rows-dropped"], "rows-dropped"),
            ("failed", max(f["rows-failed"] - f["rows-dropped"], 0), "rows-failed")]


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _why(counter: str, spec: Any) -> str:
    """Why rows were truncated, skipped, dropped or failed, from the model's definition."""
    context = getattr(spec, "context", None)
    limit = (f"input over max-context-size {context.max_tokens} tokens "
             f"('context-overflow-action' = '{context.action}')") if context else None
    if counter == "rows-truncated":
        return limit or "input over its token limit"
    if counter == "rows-skipped":
        return f"null input, or {limit}" if context and context.action.skips else "null input"
    if counter == "rows-dropped":
        return ("the request failed under IGNORE and OUTPUT has no `error-string` column to "
                "carry the error (declare it to keep such rows)")
    keeps = getattr(getattr(spec, "outputs", None), "keeps_errors", False)
    return ("the request failed; the rows carry the error in their metadata columns" if keeps
            else "the request failed")
