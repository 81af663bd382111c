"""Each row's document through the per-row pipeline against the real local server: seed 004's
messages, a null document skips the row, a malformed or unknown one fails it by the strategy."""

from __future__ import annotations

import asyncio

from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime.predictor import Predictor
from tests.conftest import METADATA_COLUMNS, model_options
from tests.fakes.files import FileStore

ERRORS = [Column(name, type_) for name, type_ in METADATA_COLUMNS]


def run(server, *rows: tuple[str | None, str], **options: str):
    spec = build_spec("m", model_options(server.dashscope_base_url, provider="qwen",
                                         model="qwen-long", document_column="doc",
                                         error_handling_strategy="IGNORE", **options),
                      [Column("doc", "STRING"), Column("question", "STRING")], ERRORS)
    predictor = Predictor(spec, CallSettings(timeout=30))

    async def go():
        try:
            return [await predictor.predict(*row) for row in rows]
        finally:
            await predictor.aclose()
    return asyncio.run(go()), predictor.metrics.counts


def test_row_documents(server) -> None:
    files = FileStore(server).install()
    report = files.add("report.pdf")
    results, counts = run(server, (f"fileid://{report}", "what?"), (None, "skipped?"),
                          ("fileid://", "empty id?"), ("fileid://file-fe-404", "unknown?"),
                          system_prompt="Answer briefly.")
    assert results[0] == [("what? [report.pdf]", None, None, None)]
    assert results[1] == []
    assert results[2] == [(None, "document-column 'doc': 'fileid://' has an empty file id; "
                                 "write fileid://<id> with the id that the upload printed (e.g. "
                                 "fileid://file-fe-xxx)", None, None)]
    [(content, error, status, _)] = results[3]
    assert (content, status) == (None, 400)
    assert error == ("HTTP 400: invalid_parameter_error: File [id:file-fe-404] does not exist or "
                     "is not accessible.")
    assert counts["rows-skipped"] == 1 and counts["rows-failed"] == 2
    assert [r.body["messages"] for r in server.requests] == [
        [{"role": "system", "content": "Answer briefly."},
         {"role": "system", "content": f"fileid://{file_id}"}, {"role": "user", "content": q}]
        for file_id, q in ((report, "what?"), ("file-fe-404", "unknown?"))]
    assert server.attempts("unknown?") == 1  # a 400 is not retried
