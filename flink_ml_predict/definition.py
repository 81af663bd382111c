"""CREATE MODEL (or options from Python) -> a validated :class:`~.model.ModelSpec`.

Pure: no network, no Flink. Everything wrong with a model definition is found here, before a job
starts, and reported with the statement, the model and the option or column at fault.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

from . import options as opts
from .columns import InputColumn, OutputSchema, classify_outputs
from .documents import DocumentSettings, document_settings
from .endpoints import foreign_api
from .errors import ModelDefinitionError
from .model import (
    ChatSettings,
    Column,
    Connection,
    ContextLimit,
    EmbeddingSettings,
    FailurePolicy,
    ModelSpec,
    Secret,
    StreamSettings,
    Throughput,
)
from .option_values import has_token_ids
from .options import OutputFormat, Strategy, Task
from .prompt import PromptBuilder, PromptTemplate
from .providers import PROVIDERS, Provider
from .structured import StructuredOutput
from .types import parse_column_type

_ENDPOINT_SUFFIX = {"/chat/completions": Task.CHAT, "/embeddings": Task.EMBEDDINGS}


class _Context:
    """Builds messages that name the statement and the model."""

    def __init__(self, where: str, model_name: str) -> None:
        self.prefix = f"{where}: CREATE MODEL {model_name}" if where else f"model {model_name}"

    def error(self, message: str) -> ModelDefinitionError:
        return ModelDefinitionError(f"{self.prefix}: {message}")


def _split_endpoint(ctx: _Context, endpoint: str) -> tuple[str, Task | None]:
    """(base URL, task named by the path or None)."""
    parsed = urlparse(endpoint.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ctx.error(
            f"option 'endpoint': '{endpoint}' is not an http(s) URL; give a base URL such as "
            "https://dashscope.aliyuncs.com/compatible-mode/v1 or a full URL ending in "
            "/chat/completions or /embeddings")
    foreign = foreign_api(parsed)
    if foreign is not None:
        raise ctx.error(f"option 'endpoint': '{endpoint}' {foreign}")
    path = parsed.path.rstrip("/")
    for suffix, task in _ENDPOINT_SUFFIX.items():
        if path.endswith(suffix):
            base = parsed._replace(path=path[: -len(suffix)], query="", fragment="").geturl()
            return base, task
    return parsed._replace(path=path).geturl(), None


def _resolve_keys(ctx: _Context, raw: Mapping[str, str],
                  ) -> dict[str, tuple[opts.ConfigOption | None, str]]:
    """Maps every given key (or alias) to its option (None: unknown); a key twice is an error."""
    resolved: dict[str, tuple[opts.ConfigOption | None, str]] = {}
    for key, value in raw.items():
        option = opts.lookup(key)
        canonical = option.key if option is not None else key
        if canonical in resolved:
            raise ctx.error(f"option '{canonical}' is given twice (as '{key}' and an alias)")
        resolved[canonical] = (option, value)
    return resolved


def _unknown_option(ctx: _Context, key: str, valid: list[str]) -> ModelDefinitionError:
    known = [k for o in opts.OPTIONS for k in (o.key, *o.aliases) if o.key in valid]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ctx.error(f"unknown option '{key}'{hint}; valid options: {', '.join(valid)}")


def _request_fields(values: Mapping[str, Any], task: Task,
                    provider: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(OpenAI fields, provider-only fields) of the request body, from the options given."""
    standard: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for option in opts.OPTIONS:
        if option.request_field is None or option.key not in values:
            continue
        if not option.applies_to(task, provider):
            continue
        target = extra if option.providers else standard
        value = values[option.key]
        target[option.request_field] = list(value) if isinstance(value, tuple) else value
    return standard, extra


def _inputs(ctx: _Context, columns: Iterable[Column]) -> tuple[InputColumn, ...]:
    inputs = tuple(InputColumn(c.name, parse_column_type(c.type, c.name, ctx.prefix))
                   for c in columns)
    if not inputs:
        raise ctx.error("INPUT (...) is required: e.g. INPUT (`input` STRING)")
    return inputs


def _outputs(ctx: _Context, columns: Iterable[Column], endpoint_task: Task | None) -> OutputSchema:
    typed = [(c.name, parse_column_type(c.type, c.name, ctx.prefix), c.comment) for c in columns]
    try:
        return classify_outputs(typed, endpoint_task)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None


def build_spec(
    name: str,
    options: Mapping[str, str],
    inputs: Iterable[Column],
    outputs: Iterable[Column],
    *,
    where: str = "",
) -> ModelSpec:
    """Validates a model definition and returns its spec.

    Args:
        name: the model's name.
        options: the WITH (...) options, values as strings (environment references resolved).
        inputs: INPUT columns.
        outputs: OUTPUT columns.
        where: the statement label used in messages, e.g. "statement 1 (line 1)".

    Raises:
        ModelDefinitionError: naming the statement, the model and the option or column.

    Example:
        >>> spec = build_spec("m", {"provider": "qwen", "endpoint": "https://x/compatible-mode/v1",
        ...     "api-key": "k", "model": "qwen-plus"}, [Column("input", "STRING")],
        ...     [Column("content", "STRING")])
        >>> spec.task
        <Task.CHAT: 'chat'>
    """
    ctx = _Context(where, name)
    resolved = _resolve_keys(ctx, options)
    for option in (opts.PROVIDER, opts.ENDPOINT, opts.API_KEY, opts.MODEL):
        if option.key not in resolved:
            raise ctx.error(f"missing required option '{option.key}' ({option.description})")
    provider_name = resolved["provider"][1].strip().lower()
    provider = PROVIDERS.get(provider_name)
    if provider is None:
        raise ctx.error(f"option 'provider': unknown provider '{resolved['provider'][1]}'; "
                        f"allowed: {', '.join(PROVIDERS)}")

    base_url, endpoint_task = _split_endpoint(ctx, resolved["endpoint"][1])
    input_columns = _inputs(ctx, inputs)
    schema = _outputs(ctx, outputs, endpoint_task)
    task = schema.task
    for key, (found, _) in resolved.items():
        if found is None:
            raise _unknown_option(ctx, key, opts.valid_keys(task, provider.name))

    values: dict[str, Any] = {}
    for key, (known, raw) in resolved.items():
        assert known is not None
        option = known
        if not option.applies_to(task, provider.name):
            wrong_provider = bool(option.providers) and provider.name not in option.providers
            scope = (f"the {', '.join(option.providers)} providers" if wrong_provider
                     else f"{'/'.join(option.tasks)} models")
            raise ctx.error(f"option '{key}' applies only to {scope}; the provider of this "
                            f"model is {provider.name} and its task {task}. Valid options: "
                            f"{', '.join(opts.valid_keys(task, provider.name))}")
        try:
            values[key] = option.parse(raw)
        except opts.OptionValueError as exc:
            raise ctx.error(f"option '{key}': {exc}") from None
    values["provider"] = provider.name
    api_key = Secret(values.pop("api-key"))

    def get(option: opts.ConfigOption) -> Any:
        return values.get(option.key, option.default)

    strategy = get(opts.ERROR_HANDLING_STRATEGY)
    failure = FailurePolicy(
        strategy=strategy,
        fallback=get(opts.RETRY_FALLBACK_STRATEGY) if strategy is Strategy.RETRY else strategy,
        max_retries=get(opts.RETRY_NUM) if strategy is Strategy.RETRY else 0,
        initial_backoff=get(opts.RETRY_INITIAL_BACKOFF),
        max_backoff=get(opts.RETRY_MAX_BACKOFF),
        output_retries=get(opts.OUTPUT_RETRY_NUM) if schema.structured else 0,
    )
    if failure.max_backoff < failure.initial_backoff:
        raise ctx.error("option 'retry-max-backoff' must not be shorter than "
                        "'retry-initial-backoff'")
    limit = get(opts.MAX_CONTEXT_SIZE)
    context = ContextLimit(limit, get(opts.CONTEXT_OVERFLOW_ACTION)) if limit else None
    body, extra_body = _request_fields(values, task, provider.name)
    chat = embedding = None
    if task is Task.CHAT:
        chat = _chat_settings(ctx, name, values, input_columns, schema, body, extra_body)
    else:
        embedding = _embedding_settings(ctx, input_columns, values, body, extra_body)
    throughput = _throughput(ctx, values, task, provider)
    for option in (opts.OUTPUT_FORMAT, opts.OUTPUT_RETRY_NUM):
        if option.key in values and not schema.structured:
            raise ctx.error(f"option '{option.key}' applies only to structured models (OUTPUT "
                            "with several model columns, or one that is not STRING)")
    request_timeout = get(opts.REQUEST_TIMEOUT)
    if chat is not None and (chat.stream or chat.documents) and (
            opts.REQUEST_TIMEOUT.key not in values):
        request_timeout = opts.DEFAULT_LONG_REQUEST_TIMEOUT_S  # the operator timeout bounds it
    return ModelSpec(
        name=name, provider=provider, task=task, model=values["model"],
        connection=Connection(base_url, api_key, request_timeout),
        inputs=input_columns, outputs=schema, failure=failure, context=context, chat=chat,
        embedding=embedding, throughput=throughput, options=values)


def _throughput(ctx: _Context, values: Mapping[str, Any], task: Task,
                provider: Provider) -> Throughput:
    """Batching (embeddings), limits and cache, with the provider's defaults and caps."""
    batch_size, batch_tokens = 1, None
    if task is Task.EMBEDDINGS:
        limit = provider.embedding_batch_limit
        batch_size = values.get(opts.BATCH_SIZE.key, limit or 1)
        if limit is not None and batch_size > limit:
            raise ctx.error(f"option 'batch-size': {batch_size} is more than the {provider.name} "
                            f"provider takes in one embeddings request; allowed: 1 to {limit}")
        batch_tokens = values.get(opts.BATCH_MAX_TOKENS.key, provider.embedding_batch_tokens)
    cache = values.get(opts.CACHE.key, opts.CACHE.default)
    if opts.CACHE_MAX_ENTRIES.key in values and not cache:
        raise ctx.error("option 'cache-max-entries' applies only with 'cache' = 'true'")
    return Throughput(
        batch_size=batch_size, batch_max_tokens=batch_tokens,
        batch_linger=values.get(opts.BATCH_LINGER.key, opts.BATCH_LINGER.default),
        requests_per_minute=values.get(opts.REQUESTS_PER_MINUTE.key),
        tokens_per_minute=values.get(opts.TOKENS_PER_MINUTE.key),
        cache_entries=values.get(opts.CACHE_MAX_ENTRIES.key, opts.CACHE_MAX_ENTRIES.default)
        if cache else 0)


def _chat_settings(ctx: _Context, name: str, values: Mapping[str, Any],
                   inputs: tuple[InputColumn, ...], schema: OutputSchema, body: dict[str, Any],
                   extra_body: dict[str, Any]) -> ChatSettings:
    documents = _document_settings(ctx, values, inputs)
    if documents is not None and documents.column is not None:
        if "{" + str(documents.column_name) + "}" in values.get(opts.PROMPT_TEMPLATE.key, ""):
            raise ctx.error(f"option 'prompt-template': {{{documents.column_name}}} is the "
                            "document-column, sent as a system message, not in the user message")
        inputs = tuple(c for i, c in enumerate(inputs) if i != documents.column)
    if has_token_ids(values.get(opts.STOP.key)) and not PROVIDERS[values["provider"]].dashscope:
        raise ctx.error("option 'stop': token ids are DashScope's (providers qwen, bailian); "
                        "this provider takes stop strings only")
    template = None
    if opts.PROMPT_TEMPLATE.key in values:
        try:
            template = PromptTemplate.parse(values[opts.PROMPT_TEMPLATE.key], inputs)
        except ValueError as exc:
            raise ctx.error(f"option 'prompt-template': {exc}") from None
    if opts.MAX_TOKENS.key in values:
        body["max_tokens"] = values[opts.MAX_TOKENS.key]
    response_format = values.get(opts.RESPONSE_FORMAT.key)
    output_format = values.get(opts.OUTPUT_FORMAT.key, opts.OUTPUT_FORMAT.default)
    structured = None
    if schema.structured:
        if response_format == "text":
            raise ctx.error("option 'response-format' = 'text' contradicts the structured OUTPUT "
                            f"({', '.join(c.name for c in schema.model_columns)}); remove it "
                            "(the answer is JSON) or declare one STRING column")
        if response_format == "json_object" and opts.OUTPUT_FORMAT.key not in values:
            output_format = OutputFormat.JSON_OBJECT
        response_format = None
        structured = StructuredOutput(name, schema.model_columns)
    return ChatSettings(
        system_prompt=values.get(opts.SYSTEM_PROMPT.key, opts.SYSTEM_PROMPT.default),
        prompt=PromptBuilder(inputs, template), body=body, extra_body=extra_body,
        response_format=response_format, structured=structured, output_format=output_format,
        stream=_stream_settings(ctx, values), documents=documents)


def _stream_settings(ctx: _Context, values: Mapping[str, Any]) -> StreamSettings | None:
    if values.get(opts.STREAM.key, False):
        return StreamSettings(values.get(opts.STREAM_IDLE_TIMEOUT.key,
                                         opts.STREAM_IDLE_TIMEOUT.default))
    for option in (opts.STREAM_IDLE_TIMEOUT, opts.INCREMENTAL_OUTPUT):
        if option.key in values:
            raise ctx.error(f"option '{option.key}' applies to streamed answers only; add "
                            "'stream' = 'true' (the answer is assembled from the stream's "
                            "increments before the row is emitted)")
    return None


def _document_settings(ctx: _Context, values: Mapping[str, Any],
                       inputs: tuple[InputColumn, ...]) -> DocumentSettings | None:
    try:
        return document_settings(values.get(opts.DOCUMENTS.key),
                                 values.get(opts.DOCUMENT_COLUMN.key), inputs)
    except ValueError as exc:
        raise ctx.error(f"option 'document-column': {exc}") from None


def _embedding_settings(ctx: _Context, inputs: tuple[InputColumn, ...],
                        values: Mapping[str, Any], body: dict[str, Any],
                        extra_body: dict[str, Any]) -> EmbeddingSettings:
    if len(inputs) != 1 or not inputs[0].type.is_string:
        found = ", ".join(f"`{c.name}` {c.type.sql()}" for c in inputs)
        raise ctx.error(f"an embeddings model takes exactly one STRING INPUT column; found {found}")
    return EmbeddingSettings(body=body, extra_body=extra_body,
                             dimension=values.get(opts.DIMENSION.key),
                             max_input_tokens=values.get(opts.MAX_TOKENS.key))
