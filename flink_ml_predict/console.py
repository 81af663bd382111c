"""What ``flink-ml-predict run`` writes for a person: its console, and the log file behind it.

The console is standard error as the command found it. Only the command's own output goes there:
its messages, the warnings of the package's loggers (the per-row ones sampled where they are
raised) and, on a terminal, live progress lines that messages never break.

Everything else goes to a log file. While a script runs, ``sys.stderr`` *is* that file: on the
embedded mini-cluster PyFlink runs the Python functions in this process, and Beam's worker prints
the traceback of a failed bundle (with the row it was handling) straight to ``sys.stderr``;
Python's own warnings and the root logger (Beam, PyFlink, py4j, until PyFlink's worker routes it to
Flink's log) go there too. The file is kept, and its path printed, when the run failed; otherwise
it is removed unless ``--log-file`` named it. Every api-key the script uses is masked in it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

MASK = "******"
PACKAGE_LOGGER = "flink_ml_predict"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Console:
    """Lines for a person on standard error; on a terminal, a block of live status lines below
    them that each message first clears and then redraws.

    Also a minimal text stream (``write``/``flush``), for code that prints notices to a file.
    """

    def __init__(self, stream: TextIO, *, live: bool = True) -> None:
        self._stream = stream
        self.live = live and _is_terminal(stream)
        self._lock = threading.RLock()
        self._status: list[str] = []
        self._partial = ""

    def message(self, text: str) -> None:
        """Writes one message (one or more lines)."""
        with self._lock:
            self._clear()
            self._stream.write(text.rstrip("\n") + "\n")
            self._draw()
            self._stream.flush()

    def status(self, lines: list[str]) -> None:
        """Replaces the live status lines (ignored when the console is not a live terminal)."""
        if not self.live:
            return
        width = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)
        lines = [line[:width] for line in lines]
        with self._lock:
            if lines == self._status:
                return
            self._clear()
            self._status = lines
            self._draw()
            self._stream.flush()

    def end_status(self) -> None:
        """Removes the live status lines."""
        with self._lock:
            self._clear()
            self._status = []
            self._stream.flush()

    def write(self, text: str) -> int:
        """Stream interface: whole lines become messages."""
        with self._lock:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                self.message(line)
        return len(text)

    def flush(self) -> None:
        """Stream interface."""
        with self._lock:
            self._stream.flush()

    def _clear(self) -> None:
        if self._status:
            up = len(self._status) - 1
            self._stream.write((f"\x1b[{up}F" if up else "\r") + "\x1b[J")

    def _draw(self) -> None:
        if self._status:
            self._stream.write("\n".join(self._status))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


class ConsoleHandler(logging.Handler):
    """Log records to the console, as messages."""

    def __init__(self, console: Console, level: int) -> None:
        super().__init__(level)
        self._console = console
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console.message(self.format(record))
        except Exception:  # noqa: BLE001 - logging must not fail the job
            self.handleError(record)


class _MaskingStream(io.TextIOBase):
    """A text stream that masks the given secrets in everything written to it."""

    def __init__(self, target: TextIO, secrets: set[str]) -> None:
        self._target = target
        self.secrets = secrets

    def write(self, text: str) -> int:
        masked = text
        for secret in self.secrets:
            if secret:
                masked = masked.replace(secret, MASK)
        self._target.write(masked)
        self._target.flush()
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


class RunLog:
    """The log file of one run (see the module's docstring).

    Args:
        path: where to write it (kept whatever happens); None: a new file in the temp directory,
            kept only if :meth:`keep` is called.
        name: part of the default file name (the script's name).
    """

    def __init__(self, path: Path | None = None, name: str = "run") -> None:
        self.explicit = path is not None
        if path is None:
            folder = Path(tempfile.gettempdir()) / "flink-ml-predict"
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = folder / f"{name}-{stamp}-{os.getpid()}.log"
        self.path = path
        self._kept = self.explicit
        self._file = open(path, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        self.stream = _MaskingStream(self._file, set())

    def mask(self, secrets: Iterable[str]) -> None:
        """Masks these values in everything written from now on."""
        self.stream.secrets.update(s for s in secrets if s)

    def keep(self) -> None:
        """Keeps the file when the run ends (it explains a failure)."""
        self._kept = True

    def close(self) -> None:
        """Flushes; removes the file unless it is kept. Later writes (Beam's threads while the
        process ends) still succeed and go nowhere."""
        self._file.flush()
        if not self._kept:
            with contextlib.suppress(OSError):
                self.path.unlink()


@contextlib.contextmanager
def redirected(console: Console, run_log: RunLog, *, verbose: bool) -> Iterator[None]:
    """While a script runs: ``sys.stderr`` and the root logger write to the log file; the
    package's loggers write to the log file and, from WARNING (INFO when verbose), to the
    console. Restores the previous state when done."""
    handler = logging.StreamHandler(run_log.stream)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    package = logging.getLogger(PACKAGE_LOGGER)
    saved = (sys.stderr, root.handlers[:], root.level, package.handlers[:], package.level,
             package.propagate)
    sys.stderr = run_log.stream
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    package.handlers = [handler, ConsoleHandler(console, logging.INFO if verbose
                                                else logging.WARNING)]
    package.setLevel(logging.INFO)
    package.propagate = False  # PyFlink's worker takes over the root logger's handlers
    logging.getLogger(f"{PACKAGE_LOGGER}.runner").setLevel(logging.DEBUG)  # full traces
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        logging.getLogger(f"{PACKAGE_LOGGER}.runner").setLevel(logging.NOTSET)
        sys.stderr, root.handlers, level, package.handlers, package_level, propagate = saved
        root.setLevel(level)
        package.setLevel(package_level)
        package.propagate = propagate
