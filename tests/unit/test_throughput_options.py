"""The options of embedding batches, client-side limits and the cache: pinned defaults, the
providers' documented caps, and what is refused before a job starts."""

from __future__ import annotations

import pickle

import pytest

from flink_ml_predict import ModelDefinitionError
from flink_ml_predict import options as opts
from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import Column, Throughput

KEY = "sk-unit-0123456789abcdefghij"
ENDPOINTS = {"openai": "https://api.openai.com/v1",
             "qwen": "https://dashscope.aliyuncs.com/compatible-mode/v1",
             "bailian": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"}


def spec(provider: str = "qwen", output: str = "ARRAY<FLOAT>", **options: str):
    values = {"provider": provider, "endpoint": ENDPOINTS[provider], "api-key": KEY,
              "model": "text-embedding-v4" if output == "ARRAY<FLOAT>" else "qwen-plus"}
    values.update({k.replace("_", "-"): v for k, v in options.items()})
    return build_spec("m", values, [Column("input", "STRING")], [Column("out", output)])


def test_defaults_are_pinned() -> None:
    assert opts.BATCH_LINGER.default == 0.005
    assert opts.CACHE.default is False and opts.CACHE_MAX_ENTRIES.default == 10_000
    assert opts.REQUESTS_PER_MINUTE.default is None and opts.TOKENS_PER_MINUTE.default is None
    assert opts.DEFAULT_COMPLETION_TOKENS == 256
    assert Throughput() == Throughput(1, None, 0.005, None, None, 0)


@pytest.mark.parametrize(("provider", "size", "tokens"), [
    ("openai", 2048, 300_000),  # OpenAI: 2048 inputs, 300,000 tokens summed per request
    ("qwen", 10, None),  # DashScope text-embedding-v3/v4: 10 inputs of at most 8192 tokens
    ("bailian", 10, None),
])
def test_embedding_batches_default_to_the_providers_caps(provider, size, tokens) -> None:
    throughput = spec(provider).throughput
    assert (throughput.batch_size, throughput.batch_max_tokens) == (size, tokens)


def test_chat_models_are_never_batched_and_nothing_is_limited_by_default() -> None:
    throughput = spec(output="STRING").throughput
    assert throughput == Throughput()


def test_options_are_typed_and_kept_in_the_spec() -> None:
    s = spec(batch_size="4", batch_max_tokens="1000", batch_linger="20ms",
             requests_per_minute="600", tokens_per_minute="100000", cache="true",
             cache_max_entries="50")
    assert s.throughput == Throughput(4, 1000, 0.02, 600, 100_000, 50)
    assert pickle.loads(pickle.dumps(s)).throughput == s.throughput


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": "11"}, "option 'batch-size': 11 is more than the qwen provider takes in one "
                           "embeddings request; allowed: 1 to 10"),
    ({"batch_size": "0"}, "option 'batch-size': 0 is outside the allowed range >= 1"),
    ({"requests_per_minute": "0"}, "option 'requests-per-minute': 0 is outside the allowed range"),
    ({"tokens_per_minute": "many"}, "option 'tokens-per-minute': 'many' is not an integer"),
    ({"cache": "yes"}, "option 'cache': 'yes' is not true or false"),
    ({"cache_max_entries": "5"}, "option 'cache-max-entries' applies only with 'cache' = 'true'"),
    ({"batch_linger": "0ms"}, "option 'batch-linger': '0ms' must be longer than 0"),
])
def test_bad_values_are_refused_before_a_job_starts(options, message) -> None:
    with pytest.raises(ModelDefinitionError) as caught:
        spec(**options)
    assert message in str(caught.value)
    assert "CREATE MODEL m" in str(caught.value) or "model m" in str(caught.value)


def test_batch_options_apply_to_embeddings_only() -> None:
    with pytest.raises(ModelDefinitionError, match="option 'batch-size' applies only to "
                                                   "embeddings models"):
        spec(output="STRING", batch_size="4")
    assert spec(output="STRING", requests_per_minute="60", cache="true").throughput.cache_entries
