"""Providers: small descriptions of how openai, qwen and bailian differ; one shared implementation.

A provider is not code: every provider speaks the OpenAI wire format through the same client
(:mod:`flink_ml_predict.runtime.client`). What differs is listed in :class:`Provider`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """What distinguishes one provider.

    Attributes:
        name: the value of the 'provider' option.
        title: a human name used in messages.
        embedding_batch_limit: most inputs one embeddings request may carry (None: no limit known);
            the default of the 'batch-size' option and its upper bound.
        embedding_batch_tokens: most tokens, summed over the inputs, of one embeddings request
            (None: none documented); the default of the 'batch-max-tokens' option.
        example_endpoint: shown in messages and docs.
        dashscope: whether the service is Alibaba's DashScope compatible mode; DashScope-only
            options are sent in the request body beside the OpenAI ones.
    """

    name: str
    title: str
    example_endpoint: str
    embedding_batch_limit: int | None = None
    embedding_batch_tokens: int | None = None
    dashscope: bool = False


# OpenAI's embeddings reference: an input array of at most 2048 items, each within the model's
# input limit (8192 tokens), and at most 300,000 tokens summed across the inputs of one request.
OPENAI = Provider("openai", "OpenAI", "https://api.openai.com/v1/chat/completions",
                  embedding_batch_limit=2048, embedding_batch_tokens=300_000)
# DashScope's compatible-mode embeddings (text-embedding-v3/v4) take at most 10 inputs of at most
# 8192 tokens each and reject a larger batch (400 InvalidParameter); no summed cap is documented.
QWEN = Provider("qwen", "Qwen (DashScope compatible mode)",
                "https://dashscope.aliyuncs.com/compatible-mode/v1", 10, dashscope=True)
BAILIAN = Provider("bailian", "Bailian (Model Studio)",
                   "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions", 10,
                   dashscope=True)

PROVIDERS: dict[str, Provider] = {p.name: p for p in (OPENAI, QWEN, BAILIAN)}
