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
        embedding_batch_limit: most inputs one embeddings request may carry (None: no limit known).
        example_endpoint: shown in messages and docs.
        dashscope: whether the service is Alibaba's DashScope compatible mode; DashScope-only
            options are sent in the request body beside the OpenAI ones.
    """

    name: str
    title: str
    example_endpoint: str
    embedding_batch_limit: int | None = None
    dashscope: bool = False


OPENAI = Provider("openai", "OpenAI", "https://api.openai.com/v1/chat/completions")
# DashScope's text-embedding-v3/v4 reject more than 10 inputs in one request (400 InvalidParameter).
QWEN = Provider("qwen", "Qwen (DashScope compatible mode)",
                "https://dashscope.aliyuncs.com/compatible-mode/v1", 10, dashscope=True)
BAILIAN = Provider("bailian", "Bailian (Model Studio)",
                   "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions", 10,
                   dashscope=True)

PROVIDERS: dict[str, Provider] = {p.name: p for p in (OPENAI, QWEN, BAILIAN)}
