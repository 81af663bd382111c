"""Faults of whole embeddings batches, decided on the request body (the fault plan keys requests
on a single input, so it cannot aim at a batch).

* :class:`RejectMarkedInputs`: an embeddings request with an input that contains a marker is
  answered 400 ``InvalidParameter`` as a whole, whatever its other inputs, as DashScope rejects a
  batch for one bad input. The client must split the batch to find the bad row.
* :class:`FailFirstRequests`: the first ``count`` limited requests get a fault (e.g. a 503), the
  rest their normal answer: a retryable failure of a whole batch.

Both are fault sources: ``server.fault_sources.insert(0, source)`` or ``source.install(server)``.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.exchange import RecordedRequest
from tests.fakes.faults import Fault

__all__ = ["FailFirstRequests", "RejectMarkedInputs", "embedding_inputs"]


def embedding_inputs(body: Any) -> list[str]:
    """The texts of an embeddings request body ([] for anything else)."""
    given = body.get("input") if isinstance(body, dict) else None
    if isinstance(given, str):
        return [given]
    if isinstance(given, list):
        return [text for text in given if isinstance(text, str)]
    return []


class RejectMarkedInputs:
    """400 for a whole embeddings request when one of its inputs contains ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.rejected: list[list[str]] = []
        """The inputs of every request rejected, in order."""
        self._lock = threading.Lock()

    def install(self, server: object) -> RejectMarkedInputs:
        server.fault_sources.insert(0, self)  # type: ignore[attr-defined]
        return self

    def __call__(self, request: RecordedRequest) -> Fault | None:
        if not urlsplit(request.path).path.rstrip("/").endswith("/embeddings"):
            return None
        inputs = embedding_inputs(request.body)
        if not any(self.marker in text for text in inputs):
            return None
        with self._lock:
            self.rejected.append(inputs)
        return Fault.status_code(400, code="InvalidParameter")


class FailFirstRequests:
    """The first ``count`` requests whose path ends with ``path`` get ``fault``."""

    def __init__(self, count: int, fault: Fault, path: str = "/embeddings") -> None:
        self.remaining = count
        self.fault = fault
        self.path = path
        self._lock = threading.Lock()

    def install(self, server: object) -> FailFirstRequests:
        server.fault_sources.insert(0, self)  # type: ignore[attr-defined]
        return self

    def __call__(self, request: RecordedRequest) -> Fault | None:
        if not urlsplit(request.path).path.rstrip("/").endswith(self.path):
            return None
        with self._lock:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
        return self.fault
