"""Model definitions without Flink: pinned defaults, endpoint handling, the masked key, request
fields, and the row budget inside the operator timeout."""

from __future__ import annotations

import pickle

import pytest

from flink_ml_predict import options as opts
from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import CallSettings, Column, Secret, masked_options

KEY = "sk-unit-0123456789abcdefghij"


def spec(endpoint: str = "https://api.openai.com/v1/chat/completions", output: str = "STRING",
         provider: str = "openai", **options: str):
    values = {"provider": provider, "endpoint": endpoint, "api-key": KEY, "model": "gpt-4o"}
    values.update(options)
    return build_spec("m", values, [Column("input", "STRING")], [Column("out", output)])


def test_defaults_are_pinned() -> None:
    assert opts.DEFAULT_SYSTEM_PROMPT == "You are a helpful assistant."
    assert opts.ERROR_HANDLING_STRATEGY.default == "RETRY"
    assert opts.RETRY_NUM.default == 100
    assert opts.RETRY_FALLBACK_STRATEGY.default == "FAILOVER"
    assert opts.CONTEXT_OVERFLOW_ACTION.default == "truncated-tail"
    assert (opts.RETRY_INITIAL_BACKOFF.default, opts.RETRY_MAX_BACKOFF.default) == (0.5, 8.0)
    assert opts.REQUEST_TIMEOUT.default == 60.0
    assert CallSettings() == CallSettings(True, 10, 180.0, True)


@pytest.mark.parametrize("endpoint, base, task", [
    ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1", "chat"),
    ("https://api.openai.com/v1/embeddings/", "https://api.openai.com/v1", "embeddings"),
    ("https://dashscope.aliyuncs.com/compatible-mode/v1", "https://dashscope.aliyuncs.com/compatible-mode/v1", None),
    ("http://127.0.0.1:8000/compatible-mode/v1/", "http://127.0.0.1:8000/compatible-mode/v1", None),
])
def test_endpoint_gives_base_url_and_task(endpoint: str, base: str, task: str | None) -> None:
    output = "ARRAY<FLOAT>" if task == "embeddings" else "STRING"
    model = spec(endpoint, output)
    assert model.base_url == base
    assert model.task == (task or "chat")


def test_task_from_output_type_with_a_base_url() -> None:
    assert spec("https://x/compatible-mode/v1", "ARRAY<FLOAT>").task == "embeddings"
    assert spec("https://x/compatible-mode/v1", "VARCHAR(100)").task == "chat"


def test_the_key_is_masked_everywhere_but_in_reveal() -> None:
    model = spec()
    assert KEY not in repr(model) and KEY not in str(model)
    assert model.api_key.reveal() == KEY
    assert pickle.loads(pickle.dumps(model)).api_key.reveal() == KEY
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert masked_options({"api-key": KEY, "model": "x"}) == {"api-key": "******", "model": "x"}


def test_seed_000_spellings_are_aliases() -> None:
    model = spec(top_p="0.5", max_tokens="10")
    assert model.options["top-p"] == 0.5 and model.options["max-tokens"] == 10
    assert model.chat is not None and model.chat.body == {"top_p": 0.5, "max_tokens": 10}


def test_request_fields_split_openai_and_dashscope_fields() -> None:
    qwen = spec("https://x/compatible-mode/v1", provider="qwen", temperature="0.2",
                **{"top-k": "5", "enable-search": "false", "stop": "a, b"})
    assert qwen.chat is not None
    assert qwen.chat.body == {"temperature": 0.2, "stop": ["a", "b"]}
    assert qwen.chat.extra_body == {"top_k": 5, "enable_search": False}
    embeddings = spec("https://x/v1/embeddings", "ARRAY<FLOAT>", dimension="256")
    assert embeddings.embedding is not None and embeddings.chat is None
    assert (embeddings.embedding.body, embeddings.embedding.extra_body) == ({"dimensions": 256}, {})


@pytest.mark.parametrize("value, seconds", [("500ms", 0.5), ("30 s", 30.0), ("3min", 180.0),
                                            ("1h", 3600.0), ("250", 0.25)])
def test_durations(value: str, seconds: float) -> None:
    assert opts.parse_duration(value) == seconds


@pytest.mark.parametrize("timeout, budget", [(180.0, 162.0), (4.0, 3.0), (1.0, 0.5)])
def test_row_budget_stays_inside_the_operator_timeout(timeout: float, budget: float) -> None:
    assert CallSettings(timeout=timeout).row_budget == pytest.approx(budget)


def test_every_option_is_documented_for_some_provider() -> None:
    documented = "".join(opts.options_markdown(p) for p in ("openai", "qwen", "bailian"))
    assert all(f"`{option.key}`" in documented for option in opts.OPTIONS)


def test_unknown_option_lists_only_what_this_provider_and_task_take() -> None:
    from flink_ml_predict import ModelDefinitionError

    with pytest.raises(ModelDefinitionError) as caught:
        spec(temprature="0.5")
    message = str(caught.value)
    assert "did you mean 'temperature'" in message and "system-prompt" in message
    assert "top-k" not in message and "dimension" not in message and "enable-search" not in message
    with pytest.raises(ModelDefinitionError) as caught:
        spec("https://x/v1/embeddings", "ARRAY<FLOAT>", provider="qwen", dimensions="8")
    message = str(caught.value)
    assert "did you mean 'dimension'" in message
    assert "system-prompt" not in message and "temperature" not in message
