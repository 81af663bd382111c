"""``flink-ml-predict upload FILE... --endpoint URL [--api-key KEY] [--wait]``: documents for
qwen-long, uploaded through the openai SDK's files API with purpose ``file-extract``.

Prints each file's id on standard output, one a line, and on standard error a ready-to-paste
``'documents'`` option value (``fileid://id1,fileid://id2``). The key comes from ``--api-key``,
else ``DASHSCOPE_API_KEY``, else ``OPENAI_API_KEY``; it is never printed (errors are scrubbed).
``--wait`` returns only once DashScope has parsed every file (status ``processed``), so that the
first answers of a job do not wait for the parsing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import urlparse

from .documents import FILE_ID_PREFIX

__all__ = ["PURPOSE", "base_url", "resolve_key", "run_upload"]

PURPOSE = "file-extract"
KEY_VARIABLES = ("DASHSCOPE_API_KEY", "OPENAI_API_KEY")
_SUFFIXES = ("/chat/completions", "/embeddings", "/files")


def base_url(endpoint: str) -> str:
    """The base URL of an endpoint given as a base URL or a full chat/embeddings/files URL.

    Raises:
        ValueError: not an http(s) URL.
    """
    parsed = urlparse(endpoint.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--endpoint '{endpoint}' is not an http(s) URL; give a base URL such "
                         "as https://dashscope.aliyuncs.com/compatible-mode/v1")
    path = parsed.path.rstrip("/")
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return parsed._replace(path=path, query="", fragment="").geturl()


def resolve_key(given: str | None, environ: Mapping[str, str]) -> str | None:
    """--api-key, else the first provider key variable that is set."""
    if given:
        return given
    return next((environ[name] for name in KEY_VARIABLES if environ.get(name)), None)


def _describe(exc: Exception, key: str) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("error", body) if isinstance(body, dict) else None
        message = detail.get("message") if isinstance(detail, dict) else None
        text = f"HTTP {exc.status_code}: {message or exc.message}"
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        text = f"connection error ({type(cause).__name__}: {cause})" if cause else str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.replace(key, "******") if key else text


def run_upload(files: Sequence[Path], endpoint: str, api_key: str | None, *, wait: bool = False,
               environ: Mapping[str, str] | None = None, out: TextIO | None = None,
               err: TextIO | None = None, client: Any = None) -> int:
    """Uploads ``files`` and prints their ids; returns the exit status (0 ok, 1 a failed upload,
    2 bad arguments). Files uploaded before a failure are still printed."""
    import openai

    out, err = out or sys.stdout, err or sys.stderr
    key = resolve_key(api_key, os.environ if environ is None else environ)
    if not key:
        print(f"error: no API key: give --api-key or set {' or '.join(KEY_VARIABLES)}", file=err)
        return 2
    try:
        url = base_url(endpoint)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2
    for path in files:
        if not path.is_file():
            print(f"error: cannot read {path}: not a file", file=err)
            return 2
    sdk = client or openai.OpenAI(api_key=key, base_url=url)
    ids: list[str] = []
    status = 0
    for path in files:
        try:
            # DashScope's purpose for qwen-long documents; not one of OpenAI's typed purposes.
            uploaded = sdk.files.create(file=path, purpose=cast(Any, PURPOSE))
            if wait:
                uploaded = sdk.files.wait_for_processing(uploaded.id, poll_interval=1.0)
                if uploaded.status != "processed":
                    raise RuntimeError(f"file {uploaded.id} is {uploaded.status}, not processed "
                                       f"({uploaded.status_details or 'no details'})")
        except (openai.OpenAIError, RuntimeError) as exc:
            print(f"error: upload of {path} failed: {_describe(exc, key)}", file=err)
            status = 1
            break
        ids.append(uploaded.id)
        print(uploaded.id, file=out, flush=True)
    if ids:
        value = ",".join(FILE_ID_PREFIX + file_id for file_id in ids)
        print(f"'documents' = '{value}'", file=err)
    return status
