"""The files API of DashScope's compatible mode and qwen-long's ``fileid://`` system messages.

:class:`FileStore` ``(server).install()`` adds to a
:class:`~tests.fakes.openai_server.FaultInjectingServer`:

* ``POST .../files`` -- a multipart upload (``purpose`` and ``file`` fields, as the openai SDK's
  ``files.create`` sends them) answered with a file object ``{"id": "file-fe-<n>", "object":
  "file", "bytes", "created_at", "filename", "purpose", "status": "processed"}``; a request
  without a file or a purpose gets 400. Every upload is kept in :attr:`FileStore.uploads`.
* ``GET .../files/<id>`` -- the file object of an uploaded file.
* chat requests: the system messages after the first (the system prompt) are documents; the
  file ids of ``fileid://a,fileid://b`` contents must be known (uploaded, or :meth:`FileStore.add`
  -ed as uploaded before the test) or the request gets 400, as DashScope refuses an unknown file.
  A request with documents is answered ``"<user message> [<documents>]"``: the filenames of its
  file ids, then ``text:<first 12 characters>`` per inline document, so rows show which documents
  went with which question.

:func:`document_messages` reads the document system messages of a logged request.
"""

from __future__ import annotations

import email.policy
import itertools
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from typing import Any, cast

from flink_ml_predict.demo_answers import ApiError, message_text
from tests.fakes.exchange import Exchange

__all__ = ["FILE_ID_PREFIX", "FileStore", "StoredFile", "document_messages", "file_ids"]

FILE_ID_PREFIX = "fileid://"


@dataclass(frozen=True)
class StoredFile:
    """One uploaded file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content),
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "status_details": None}


def document_messages(body: Any) -> list[str]:
    """The contents of a chat request's document system messages (those after the first)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    systems = [message_text(m.get("content")) for m in messages or ()
               if isinstance(m, dict) and m.get("role") == "system"]
    return systems[1:]


def file_ids(content: str) -> list[str]:
    """The ids of a ``fileid://a,fileid://b`` system message ([] for inline text)."""
    if not content.startswith(FILE_ID_PREFIX):
        return []
    return [part.strip()[len(FILE_ID_PREFIX):] for part in content.split(",")]


class FileStore:
    """Uploaded files of one fake server (thread-safe)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._numbers = itertools.count(1)
        self.uploads: list[StoredFile] = []
        """Files received through ``POST .../files``, in order."""

    def install(self) -> FileStore:
        """Add the routes and the document-aware responder to the server."""
        self.server.add_route("POST", "/files", self._upload)
        answer_otherwise = self.server.responder
        self.server.responder = lambda body: self.answer(body, answer_otherwise)
        return self

    def add(self, filename: str, content: bytes = b"", purpose: str = "file-extract") -> str:
        """A file uploaded before the test; returns its id."""
        return self._store(filename, content, purpose).id

    def _store(self, filename: str, content: bytes, purpose: str) -> StoredFile:
        with self._lock:
            stored = StoredFile(f"file-fe-{next(self._numbers)}", filename, purpose, content,
                                int(time.time()))
            self._files[stored.id] = stored
        self.server.add_route("GET", f"/files/{stored.id}",
                              lambda e: e.send_json(200, stored.as_json()))
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def _upload(self, exchange: Exchange) -> None:
        content_type = exchange.record.headers.get("content-type", "")
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + exchange.raw_body)
        fields: dict[str, str] = {}
        upload: tuple[str, bytes] | None = None
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            payload = cast(bytes, part.get_payload(decode=True) or b"")
            if part.get_filename() is not None and name == "file":
                upload = (part.get_filename() or "", payload)
            elif isinstance(name, str):
                fields[name] = payload.decode("utf-8")
        if upload is None or not fields.get("purpose"):
            exchange.send_json(400, {"error": {
                "message": "a multipart body with a 'file' and a 'purpose' is required",
                "type": "invalid_request_error", "param": None, "code": "invalid_parameter"}})
            return
        stored = self._store(upload[0], upload[1], fields["purpose"])
        with self._lock:
            self.uploads.append(stored)
        exchange.send_json(200, stored.as_json())

    def answer(self, body: dict[str, Any], answer_otherwise: Any) -> str:
        """The answer text of a chat request (raises ApiError for an unknown file id)."""
        names = []
        for content in document_messages(body):
            ids = file_ids(content)
            for file_id in ids:
                stored = self.get(file_id)
                if stored is None:
                    raise ApiError(400, f"File [id:{file_id}] does not exist or is not "
                                   "accessible.", "invalid_parameter_error")
                names.append(stored.filename)
            if not ids:
                names.append(f"text:{content[:12]}")
        if not names:
            return str(answer_otherwise(body))
        user = next((message_text(m.get("content")) for m in reversed(body["messages"])
                     if m.get("role") == "user"), "")
        return f"{user} [{', '.join(names)}]"
