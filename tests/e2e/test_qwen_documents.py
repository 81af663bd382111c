"""Seeds 001 and 004 as real Flink jobs on the mini-cluster against the real local server, which
streams and serves files as DashScope's compatible mode does: qwen-long over a table of (document,
question) rows with streamed answers, cut streams under RETRY and IGNORE, and seed 001's
parameters and tools in the exact request bodies of qwen and bailian models."""

from __future__ import annotations

import json

import pytest

from flink_ml_predict import execute_script
from tests.conftest import TEST_KEY, collect, model_options, print_rows, render_model, run_cli
from tests.fakes import streaming
from tests.fakes.files import FileStore
from tests.fakes.openai_server import Fault
from tests.fakes.streaming import stream_fault

pytestmark = pytest.mark.flink

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
STREAMED = {"stream": True, "stream_options": {"include_usage": True}}


@pytest.fixture
def dashscope(server):
    """The test server with streaming, tool calls and the files API; two files uploaded."""
    streaming.install(server)
    files = FileStore(server).install()
    assert files.add("report.pdf", b"%PDF report") == "file-fe-1"
    assert files.add("appendix.docx", b"PK appendix") == "file-fe-2"
    return server


def bodies_by_question(server) -> dict[str, dict]:
    assert server.wait_idle()
    found = {}
    for request in server.completed_requests("/chat/completions"):
        found[request.body["messages"][-1]["content"]] = request.body
    return found


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_seed_004_script_answers_questions_about_documents(dashscope) -> None:
    result = run_cli(["run", "sql/seed_004_qwen_long_documents.sql"],
                     {"QWEN_ENDPOINT": dashscope.dashscope_base_url,
                      "DASHSCOPE_API_KEY": TEST_KEY, "QWEN_LONG_FILE_ID": "file-fe-1"})
    assert result.returncode == 0, result.stderr
    # The fake answers "<question> [<documents>]"; prompt tokens are its estimate (4 characters
    # a token): the system prompt 7, the file reference 5 or the inline text 13, the question.
    assert sorted(print_rows(result.stdout)) == [
        "+I[1, 这篇文章讲了什么?, 这篇文章讲了什么? [report.pdf], null, 15]",
        "+I[2, 文中提到了哪些模型?, 文中提到了哪些模型? [report.pdf], null, 15]",
        "+I[3, 文章讲了什么?, 文章讲了什么? [text:大型语言模型(llm)已], null, 22]",
    ]
    inline = "大型语言模型(llm)已经彻底改变了人工智能领域,使以前被认为是人类独有的自然语言处理任务成为可能..."
    base = {"model": "qwen-long", **STREAMED, "temperature": 0.3}
    assert bodies_by_question(dashscope) == {
        "这篇文章讲了什么?": {**base, "messages": [
            SYSTEM, {"role": "system", "content": "fileid://file-fe-1"}, user("这篇文章讲了什么?")]},
        "文中提到了哪些模型?": {**base, "messages": [
            SYSTEM, {"role": "system", "content": "fileid://file-fe-1"}, user("文中提到了哪些模型?")]},
        "文章讲了什么?": {**base, "messages": [
            SYSTEM, {"role": "system", "content": inline}, user("文章讲了什么?")]},
    }


def test_documents_of_the_model_and_of_each_row(t_env, dashscope) -> None:
    ddl = render_model("qa", model_options(
        dashscope.dashscope_base_url, provider="qwen", model="qwen-long", stream="true",
        documents='["fileid://file-fe-1", "Glossary: LIMA is a 65B model."]',
        document_column="doc", prompt_template="Question: {question}"),
        inputs="`doc` STRING, `question` STRING")
    execute_script(t_env, ddl + ";\n" + (
        "CREATE TEMPORARY VIEW src(id, doc, question) AS SELECT * FROM (VALUES "
        "(1, 'fileid://file-fe-2', 'one'), (2, 'fileid://file-fe-1, fileid://file-fe-2', 'two'), "
        "(3, 'Inline, with a comma.', 'three'), (4, CAST(NULL AS STRING), 'four'))"))
    rows = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL qa, "
                                 "DESCRIPTOR(doc, question))"))
    glossary = "text:Glossary: LI"
    assert rows == [
        (1, f"Question: one [report.pdf, appendix.docx, {glossary}]"),
        (2, f"Question: two [report.pdf, report.pdf, appendix.docx, {glossary}]"),
        (3, f"Question: three [report.pdf, {glossary}, text:Inline, with]"),
    ]  # row 4: its document is null, so no request and no row
    fixed_text = {"role": "system", "content": "Glossary: LIMA is a 65B model."}
    assert {q: b["messages"][1:-1] for q, b in bodies_by_question(dashscope).items()} == {
        "Question: one": [{"role": "system", "content": "fileid://file-fe-1,fileid://file-fe-2"},
                          fixed_text],
        "Question: two": [{"role": "system",
                           "content": "fileid://file-fe-1,fileid://file-fe-1,fileid://file-fe-2"},
                          fixed_text],
        "Question: three": [{"role": "system", "content": "fileid://file-fe-1"}, fixed_text,
                            {"role": "system", "content": "Inline, with a comma."}],
    }


def test_a_cut_stream_is_retried_to_the_full_answer_or_labelled(t_env, dashscope) -> None:
    output = "`content` STRING, `error-string` STRING"
    options = {"provider": "qwen", "model": "qwen-long", "stream": "true",
               "stream-idle-timeout": "2s", "document-column": "doc"}
    retry = render_model("qa_retry", model_options(dashscope.dashscope_base_url, **options),
                         inputs="`doc` STRING, `question` STRING", output=output)
    ignore = render_model("qa_ignore", model_options(
        dashscope.dashscope_base_url, **options, error_handling_strategy="IGNORE"),
        inputs="`doc` STRING, `question` STRING", output=output)
    execute_script(t_env, f"{retry};\n{ignore};\n"
                   "CREATE TEMPORARY VIEW r(id, doc, q) AS VALUES "
                   "(1, 'fileid://file-fe-1', 'cut then fine'), "
                   "(2, 'fileid://file-fe-2', 'stalled then fine');\n"
                   "CREATE TEMPORARY VIEW i(id, doc, q) AS VALUES "
                   "(3, 'fileid://file-fe-1', 'cut, ignored');")
    dashscope.script("cut then fine", [Fault.stream_cut(), None])
    dashscope.script("stalled then fine", [stream_fault("stream-stall"), None])
    dashscope.script("cut, ignored", [Fault.stream_cut()])
    rows = sorted(collect(t_env, "SELECT id, content, `error-string` FROM ML_PREDICT(TABLE r, "
                                 "MODEL qa_retry, DESCRIPTOR(doc, q)) UNION ALL SELECT id, "
                                 "content, `error-string` FROM ML_PREDICT(TABLE i, MODEL "
                                 "qa_ignore, DESCRIPTOR(doc, q))"))
    assert rows[:2] == [(1, "cut then fine [report.pdf]", None),
                        (2, "stalled then fine [appendix.docx]", None)]
    (ignored_id, content, error) = rows[2]
    assert (ignored_id, content) == (3, None)
    # The cause's name is the transport's (aiohttp: ReadError/TransferEncodingError; httpx:
    # RemoteProtocolError); what the row says is that the stream was cut after two chunks.
    assert error.startswith("stream cut after 2 chunks: connection error ("), error
    assert [dashscope.attempts(q) for q in ("cut then fine", "stalled then fine",
                                            "cut, ignored")] == [2, 2, 1]
    assert {r.outcome for r in dashscope.requests} == {"ok", "stream-cut", "stream-stall"}


TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "当你想查询指定城市的天气时非常有用。",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}]


def test_seed_001_parameters_reach_qwen_and_bailian(t_env, dashscope) -> None:
    qwen, bailian = dashscope.dashscope_base_url, dashscope.dashscope_base_url + "/chat/completions"
    output = "`content` STRING, `tool-calls` STRING, `finish-reason` STRING"
    models = {  # name: (endpoint, provider, options)
        "q_string": (qwen, "qwen", {"stop": "你好", "seed": "18446744073709551615",
                                    "max_tokens": "1500", "top_p": "0.8", "top_k": "50",
                                    "repetition_penalty": "1.1", "temperature": "0.85",
                                    "enable_search": "true", "result_format": "message"}),
        "q_strings": (qwen, "qwen", {"stop": '["你好", "天气"]', "stream": "true",
                                     "incremental_output": "true"}),
        "q_commas": (qwen, "qwen", {"stop": "END, STOP"}),
        "b_ids": (bailian, "bailian", {"stop": "[108386, 104307]", "top_k": "101"}),
        "b_id_lists": (bailian, "bailian", {"stop": "[[108386, 103924], [35946, 101243]]",
                                            "stream": "true", "seed": "0"}),
        "b_tools": (bailian, "bailian", {"tools": json.dumps(TOOLS, ensure_ascii=False),
                                         "stream": "true"}),
    }
    script, selects = [], []
    for name, (endpoint, provider, options) in models.items():
        entries = model_options(endpoint, provider=provider, model="qwen-turbo")
        entries.update(options)  # seed 001's own spellings (max_tokens, top_k, ...)
        script.append(render_model(name, entries, output=output) + ";")
        script.append(f"CREATE TEMPORARY VIEW v_{name}(t) AS VALUES ('{name} 杭州');")
        selects.append(f"SELECT t, content, `tool-calls`, `finish-reason` FROM ML_PREDICT("
                       f"TABLE v_{name}, MODEL {name}, DESCRIPTOR(t))")
    execute_script(t_env, "\n".join(script))
    rows = {row[0]: row[1:] for row in collect(t_env, " UNION ALL ".join(selects))}
    content, calls, finish = rows.pop("b_tools 杭州")
    assert rows == {f"{name} 杭州": (f"{name} 杭州", None, "stop") for name in models
                    if name != "b_tools"}
    assert (content, finish) == (None, "tool_calls")
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in json.loads(calls)] == [
        ("function", "get_current_weather", {"query": "b_tools 杭州"})]
    bodies = bodies_by_question(dashscope)

    def body(name: str, **fields) -> dict:
        return {"model": "qwen-turbo", "messages": [SYSTEM, user(f"{name} 杭州")], **fields}

    assert bodies == {
        "q_string 杭州": body("q_string", stop="你好", seed=18446744073709551615, max_tokens=1500,
                            top_p=0.8, top_k=50, repetition_penalty=1.1, temperature=0.85,
                            enable_search=True),
        "q_strings 杭州": body("q_strings", stop=["你好", "天气"], **STREAMED),
        "q_commas 杭州": body("q_commas", stop=["END", "STOP"]),
        "b_ids 杭州": body("b_ids", stop=[108386, 104307], top_k=101),
        "b_id_lists 杭州": body("b_id_lists", stop=[[108386, 103924], [35946, 101243]], seed=0,
                              **STREAMED),
        "b_tools 杭州": body("b_tools", tools=TOOLS, **STREAMED),
    }
    assert {r.path for r in dashscope.requests} == {"/compatible-mode/v1/chat/completions"}
