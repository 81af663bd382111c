"""`flink-ml-predict upload`: documents go up through the openai SDK's files API with purpose
file-extract, to the real local server; their ids come back on standard output, a ready-to-paste
'documents' value on standard error, and the key is never printed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flink_ml_predict.upload import base_url, resolve_key, run_upload
from tests.conftest import TEST_KEY, run_cli
from tests.fakes.files import FileStore


@pytest.fixture
def store(server) -> FileStore:
    return FileStore(server).install()


@pytest.fixture
def documents(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "report.pdf", tmp_path / "说明.txt"
    first.write_bytes(b"%PDF-1.4 fake report")
    second.write_text("大型语言模型已经彻底改变了人工智能领域。", encoding="utf-8")
    return [first, second]


def upload(files, endpoint, key=TEST_KEY, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    status = run_upload(files, endpoint, key, out=out, err=err, environ={}, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_files_are_uploaded_for_file_extract_and_their_ids_printed(server, store, documents):
    status, out, err = upload(documents, server.dashscope_base_url)
    assert status == 0
    assert out.splitlines() == ["file-fe-1", "file-fe-2"]
    assert err == "'documents' = 'fileid://file-fe-1,fileid://file-fe-2'\n"
    assert [(f.filename, f.purpose, f.content) for f in store.uploads] == [
        ("report.pdf", "file-extract", b"%PDF-1.4 fake report"),
        ("说明.txt", "file-extract", "大型语言模型已经彻底改变了人工智能领域。".encode())]
    requests = server.requests
    assert [(r.method, r.path) for r in requests] == [("POST", "/compatible-mode/v1/files")] * 2
    assert requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert requests[0].headers["content-type"].startswith("multipart/form-data; boundary=")


def test_wait_polls_until_processed_and_a_chat_url_is_accepted(server, store, documents):
    status, out, _ = upload(documents[:1], server.dashscope_base_url + "/chat/completions",
                            wait=True)
    assert (status, out) == (0, "file-fe-1\n")
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/compatible-mode/v1/files"), ("GET", "/compatible-mode/v1/files/file-fe-1")]


def test_a_refused_upload_exits_1_without_the_key(server, store, documents):
    wrong = "sk-wrong-key-0123456789"
    status, out, err = upload(documents, server.dashscope_base_url, key=wrong)
    assert (status, out) == (1, "")
    assert "error: upload of" in err and "report.pdf failed: HTTP 401: Incorrect API key" in err
    assert wrong not in err and store.uploads == []


def test_bad_arguments_exit_2(server, documents, tmp_path):
    assert upload(documents, server.dashscope_base_url, key=None)[0::2] == (
        2, "error: no API key: give --api-key or set DASHSCOPE_API_KEY or OPENAI_API_KEY\n")
    status, _, err = upload([tmp_path / "missing.pdf"], server.dashscope_base_url)
    assert status == 2 and "cannot read" in err and "missing.pdf" in err
    assert upload(documents, "dashscope.aliyuncs.com")[0] == 2
    assert server.requests == []


def test_key_and_url_resolution() -> None:
    assert resolve_key(None, {"OPENAI_API_KEY": "o", "DASHSCOPE_API_KEY": "d"}) == "d"
    assert resolve_key(None, {"OPENAI_API_KEY": "o"}) == "o"
    assert resolve_key("k", {"DASHSCOPE_API_KEY": "d"}) == "k"
    assert base_url("https://h/compatible-mode/v1/files/") == "https://h/compatible-mode/v1"


def test_the_command_takes_the_key_from_the_environment(server, store, documents):
    result = run_cli(["upload", *map(str, documents), "--endpoint", server.dashscope_base_url],
                     {"DASHSCOPE_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["file-fe-1", "file-fe-2"]
    assert "'documents' = 'fileid://file-fe-1,fileid://file-fe-2'" in result.stderr
    assert TEST_KEY not in result.stdout + result.stderr
