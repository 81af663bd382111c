"""Seed 001's parameters, streaming and documents as CREATE MODEL options: what each value becomes
in the request body (standard field or beside it), and what is refused, with which message.
Expected bodies are written out by hand from DashScope's compatible-mode documentation."""

from __future__ import annotations

import pytest

from flink_ml_predict import ModelDefinitionError
from flink_ml_predict.definition import build_spec
from flink_ml_predict.documents import Documents, parse_document, parse_documents_option
from flink_ml_predict.model import Column
from flink_ml_predict.options import lookup
from tests.conftest import TEST_KEY

QWEN = "https://dashscope.aliyuncs.com/compatible-mode/v1"


def spec(provider: str = "qwen", endpoint: str = QWEN, inputs: tuple[str, ...] = ("input",),
         output: str = "STRING", **options: str):
    given = {"provider": provider, "endpoint": endpoint, "api-key": TEST_KEY, "model": "qwen-long"}
    # Seed 001's spellings (top_k, max_tokens, ...) are aliases; other keys: '_' -> '-'.
    given.update({k if lookup(k) else k.replace("_", "-"): v for k, v in options.items()})
    return build_spec("m", given, [Column(name, "STRING") for name in inputs],
                      [Column("content", output)])


def refused(**kwargs: str) -> str:
    with pytest.raises(ModelDefinitionError) as caught:
        spec(**kwargs)
    return str(caught.value)


@pytest.mark.parametrize("value, sent", [
    ("你好", "你好"),
    ("END, STOP", ["END", "STOP"]),
    ('["你好", "天气"]', ["你好", "天气"]),
    ('["a, b"]', ["a, b"]),
    ("[108386, 104307]", [108386, 104307]),
    ("[[108386, 103924], [35946, 101243]]", [[108386, 103924], [35946, 101243]]),
])
@pytest.mark.parametrize("provider", ["qwen", "bailian"])
def test_stop_in_each_form_is_the_standard_stop_field(provider: str, value: str, sent) -> None:
    chat = spec(provider, stop=value).chat
    assert chat is not None and chat.body == {"stop": sent} and chat.extra_body == {}


def test_openai_keeps_the_comma_form_and_takes_only_strings() -> None:
    chat = spec("openai", "https://api.openai.com/v1", stop="END, STOP").chat
    assert chat is not None and chat.body == {"stop": ["END", "STOP"]}
    message = refused(provider="openai", endpoint="https://api.openai.com/v1", stop="[1, 2]")
    assert "option 'stop': token ids are DashScope's" in message


@pytest.mark.parametrize("value, expected", [
    ('["你好", 104307]', "mixes strings and token ids"),
    ('["a", [1, 2]]', "mixes strings and token ids"),
    ("[1, [2]]", "is not a stop list"),
    ("[-1]", "token ids integers >= 0"),
    ("[]", "not an empty array"),
    ('["a", "b"', "is not JSON"),
    (" , ", "at least one stop sequence"),
])
def test_bad_stop_values(value: str, expected: str) -> None:
    message = refused(stop=value)
    assert "option 'stop'" in message and expected in message


def test_seed_001_numbers_and_where_they_go() -> None:
    chat = spec(seed=str(2**64 - 1), max_tokens="1500", top_p="1.0", top_k="101",
                repetition_penalty="1.05", temperature="0", enable_search="true").chat
    assert chat is not None
    assert chat.body == {"seed": 18446744073709551615, "max_tokens": 1500, "top_p": 1.0,
                         "temperature": 0.0}
    assert chat.extra_body == {"top_k": 101, "repetition_penalty": 1.05, "enable_search": True}


@pytest.mark.parametrize("options, expected", [
    ({"seed": str(2**64)}, "option 'seed': 18446744073709551616 is outside the allowed range "
                           "[0, 18446744073709551615]"),
    ({"seed": "-1"}, "[0, 18446744073709551615]"),
    ({"top_k": "2.5"}, "option 'top-k': '2.5' is not an integer"),
    ({"top_k": "0"}, "option 'top-k': 0 is outside the allowed range >= 1"),
    ({"top_k": "None"}, "leave the option out for DashScope's None"),
    ({"repetition_penalty": "0"}, "option 'repetition-penalty': 0 is outside the allowed range > 0"),
    ({"temperature": "2.0"}, "[0, 2)"),
    ({"top_p": "0"}, "(0, 1]"),
    ({"enable_search": "yes"}, "option 'enable-search': 'yes' is not true or false"),
])
def test_seed_001_ranges(options: dict[str, str], expected: str) -> None:
    assert expected in refused(**options)


def test_native_api_parameters() -> None:
    chat = spec(result_format="message", stream="true", incremental_output="true").chat
    assert chat is not None and chat.body == {} and chat.extra_body == {}
    assert "'text' is not available" in refused(result_format="text")
    message = refused(prompt="hello")
    assert "option 'prompt': a parameter of DashScope's native API" in message
    assert "'prompt-template'" in message
    assert "option 'messages': a parameter of DashScope's native API" in refused(messages="[]")
    message = refused(incremental_output="true")
    assert "option 'incremental-output' applies to streamed answers only" in message
    assert "'stream' = 'true'" in message


def test_tools_are_sent_as_given() -> None:
    tools = ('[{"type": "function", "function": {"name": "get_weather", "description": "天气", '
             '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]')
    chat = spec(tools=tools).chat
    assert chat is not None and chat.body == {"tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "天气",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}
    openai_chat = spec("openai", "https://api.openai.com/v1", tools=tools).chat
    assert openai_chat is not None and openai_chat.body == chat.body


@pytest.mark.parametrize("value, expected", [
    ('{"type": "function"}', "must be a non-empty JSON array of tool objects, not a JSON dict"),
    ("[]", "not an empty array"),
    ("get_weather", "is not JSON"),
    ('["get_weather"]', "tool 0 is not a JSON object"),
    ('[{"function": {"name": "f"}}]', 'tool 0 has no "type"'),
    ('[{"type": "function", "function": {"name": "a b"}}]', 'needs a "name" of letters'),
    ('[{"type": "function", "function": {"name": "f", "parameters": []}}]',
     '"parameters" must be a JSON Schema object'),
])
def test_bad_tools(value: str, expected: str) -> None:
    message = refused(tools=value)
    assert "option 'tools'" in message and expected in message


def test_stream_settings_and_timeouts() -> None:
    plain = spec()
    assert plain.chat is not None and plain.chat.stream is None
    assert plain.connection.request_timeout == 60.0
    streamed = spec(stream="true")
    assert streamed.chat is not None and streamed.chat.stream is not None
    assert streamed.chat.stream.idle_timeout == 30.0
    assert streamed.connection.request_timeout == 600.0  # the operator timeout bounds it
    tuned = spec(stream="true", stream_idle_timeout="5s", request_timeout="90s")
    assert tuned.chat is not None and tuned.chat.stream is not None
    assert (tuned.chat.stream.idle_timeout, tuned.connection.request_timeout) == (5.0, 90.0)
    assert spec(documents="fileid://file-fe-1").connection.request_timeout == 600.0
    assert "option 'stream-idle-timeout' applies to streamed answers only" in refused(
        stream_idle_timeout="5s")
    message = refused(endpoint=QWEN + "/embeddings", output="ARRAY<FLOAT>", stream="true")
    assert "option 'stream' applies only to chat models" in message


def test_document_values() -> None:
    assert parse_document("fileid://file-fe-1") == Documents(file_ids=("file-fe-1",))
    assert parse_document("fileid://a, fileid://b").file_ids == ("a", "b")
    assert parse_document("Text, with commas.") == Documents(texts=("Text, with commas.",))
    both = parse_documents_option('["fileid://a,fileid://b", "inline text", "fileid://c"]')
    assert both == Documents(("a", "b", "c"), ("inline text",))
    assert both.messages() == [{"role": "system", "content": "fileid://a,fileid://b,fileid://c"},
                               {"role": "system", "content": "inline text"}]
    assert Documents(texts=("x", "y")).messages() == [{"role": "system", "content": "x"},
                                                      {"role": "system", "content": "y"}]


@pytest.mark.parametrize("value, expected", [
    ("fileid://", "'fileid://' has an empty file id"),
    ("fileid://a,fileid://", "'fileid://' has an empty file id"),
    ("fileid://a, and some text", "mixes fileid:// references with other text"),
    ("fileid://a b", "is not a file id"),
    ("[]", "non-empty JSON array of strings"),
    ("[1]", "non-empty JSON array of strings"),
    ('["ok", ', "is not a JSON array"),
    ("   ", "must not be empty"),
])
def test_bad_documents(value: str, expected: str) -> None:
    message = refused(documents=value)
    assert "option 'documents'" in message and expected in message


def test_document_column() -> None:
    model = spec(inputs=("doc", "question"), document_column="doc", documents="fileid://f0",
                 prompt_template="Q: {question}")
    chat = model.chat
    assert chat is not None and chat.documents is not None
    assert (chat.documents.column, chat.documents.column_name) == (0, "doc")
    assert [c.name for c in chat.prompt.columns] == ["question"]
    documents, rest = chat.documents.for_row(("fileid://f1,fileid://f2", "what?"))
    assert documents == Documents(("f0", "f1", "f2")) and rest == ("what?",)
    assert chat.documents.for_row((None, "what?")) == (None, ("what?",))
    with pytest.raises(ValueError, match="document-column 'doc': 'fileid://' has an empty"):
        chat.documents.for_row(("fileid://", "what?"))


@pytest.mark.parametrize("inputs, options, expected", [
    (("doc", "question"), {"document_column": "file"},
     "option 'document-column': 'file' is not an INPUT column; INPUT columns: doc, question"),
    (("doc",), {"document_column": "doc"}, "'doc' is the only INPUT column"),
    (("doc", "question"), {"document_column": "doc", "prompt_template": "{doc}: {question}"},
     "option 'prompt-template': {doc} is the document-column"),
])
def test_bad_document_column(inputs, options, expected) -> None:
    assert expected in refused(inputs=inputs, **options)


def test_documents_are_dashscope_options() -> None:
    message = refused(provider="openai", endpoint="https://api.openai.com/v1", documents="x")
    assert "option 'documents' applies only to the qwen, bailian providers" in message
