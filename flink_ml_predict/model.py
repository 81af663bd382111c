"""A validated model definition: CREATE MODEL (or options from Python) -> :class:`ModelSpec`.

Pure: no network, no Flink. Everything wrong with a model definition is found here, before a job
starts, and reported with the statement, the model and the option or column at fault.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from . import options as opts
from .errors import ModelDefinitionError
from .providers import PROVIDERS, Provider

VALUE = "value"
ERROR_STRING = "error-string"
HTTP_STATUS_CODE = "http-status-code"
HTTP_HEADERS_MAP = "http-headers-map"
# Metadata columns of seed 003 and their canonical types.
METADATA_TYPES = {
    ERROR_STRING: "STRING",
    HTTP_STATUS_CODE: "INT",
    HTTP_HEADERS_MAP: "MAP<STRING,ARRAY<STRING>>",
}
_TASK_OUTPUT_TYPE = {opts.CHAT: "STRING", opts.EMBEDDINGS: "ARRAY<FLOAT>"}
_ENDPOINT_SUFFIX = {"/chat/completions": opts.CHAT, "/embeddings": opts.EMBEDDINGS}


class Secret:
    """A string that never shows itself in repr, str, logs or messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that sends it (the HTTP client)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('******')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (Secret, (self._value,))


MASK = "******"


@dataclass(frozen=True)
class Column:
    """A column of INPUT or OUTPUT: its name and its type text as declared."""

    name: str
    type: str


@dataclass(frozen=True)
class OutputColumn:
    """An OUTPUT column and its role: the model's value or one of the metadata columns."""

    name: str
    type: str
    role: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything a Flink worker needs to call one model. Frozen and picklable.

    Attributes:
        name: the model's name in SQL.
        provider: the provider description.
        task: 'chat' or 'embeddings'.
        base_url: the OpenAI-style base URL (endpoint without /chat/completions or /embeddings).
        api_key: the key, masked everywhere except in the HTTP header.
        model: the provider's model name.
        input_column: the INPUT column.
        outputs: the OUTPUT columns in declared order, each with its role.
        values: typed values of every option given (aliases resolved to keys).
    """

    name: str
    provider: Provider
    task: str
    base_url: str
    api_key: Secret
    model: str
    input_column: Column
    outputs: tuple[OutputColumn, ...]
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, option: opts.ConfigOption) -> Any:
        """The option's value, or its default when it was not given."""
        return self.values.get(option.key, option.default)

    @property
    def value_column(self) -> OutputColumn:
        """The OUTPUT column that receives the model's answer."""
        return next(c for c in self.outputs if c.role == VALUE)

    def request_fields(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(standard OpenAI fields, provider-only fields for the request body) from the options."""
        standard: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for option in opts.OPTIONS:
            if option.request_field is None or option.key not in self.values:
                continue
            if not option.applies_to(self.task, self.provider.name):
                continue
            target = extra if option.providers else standard
            value = self.values[option.key]
            target[option.request_field] = list(value) if isinstance(value, tuple) else value
        return standard, extra


def _normalise_type(type_text: str) -> str:
    """Upper-case type text without spaces or NULL constraints, VARCHAR/INTEGER folded."""
    text = re.sub(r"\s+", " ", type_text.strip().upper())
    text = re.sub(r"\bNOT NULL\b|\bNULL\b", "", text)
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"\bVARCHAR\(2147483647\)|\bVARCHAR\b(?!\()", "STRING", text)
    return text.replace("INTEGER", "INT")


def _is_string_type(type_text: str) -> bool:
    norm = _normalise_type(type_text)
    return norm == "STRING" or bool(re.fullmatch(r"(VAR)?CHAR\(\d+\)", norm))


class _Context:
    """Builds messages that name the statement and the model."""

    def __init__(self, where: str, model_name: str) -> None:
        self.prefix = f"{where}: CREATE MODEL {model_name}" if where else f"model {model_name}"

    def error(self, message: str) -> ModelDefinitionError:
        return ModelDefinitionError(f"{self.prefix}: {message}")


def _split_endpoint(ctx: _Context, endpoint: str) -> tuple[str, str | None]:
    """(base URL, task named by the path or None)."""
    parsed = urlparse(endpoint.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ctx.error(
            f"option 'endpoint': '{endpoint}' is not an http(s) URL; give a base URL such as "
            "https://dashscope.aliyuncs.com/compatible-mode/v1 or a full URL ending in "
            "/chat/completions or /embeddings")
    path = parsed.path.rstrip("/")
    for suffix, task in _ENDPOINT_SUFFIX.items():
        if path.endswith(suffix):
            base = parsed._replace(path=path[: -len(suffix)], query="", fragment="").geturl()
            return base, task
    return parsed._replace(path=path).geturl(), None


def _classify_outputs(ctx: _Context, outputs: Sequence[Column]) -> tuple[OutputColumn, ...]:
    if not outputs:
        raise ctx.error("OUTPUT (...) is required: declare one column, STRING for chat or "
                        "ARRAY<FLOAT> for embeddings, e.g. OUTPUT (`content` STRING)")
    classified = []
    for column in outputs:
        if column.name in METADATA_TYPES:
            expected = METADATA_TYPES[column.name]
            if _normalise_type(column.type) != expected:
                raise ctx.error(
                    f"metadata column '{column.name}' must have type "
                    f"{expected.replace(',', ', ')}, not {column.type}")
            classified.append(OutputColumn(column.name, column.type, column.name))
        else:
            classified.append(OutputColumn(column.name, column.type, VALUE))
    values = [c for c in classified if c.role == VALUE]
    if len(values) != 1:
        names = ", ".join(c.name for c in values) or "none"
        raise ctx.error(
            f"OUTPUT must declare exactly one value column (STRING for chat, ARRAY<FLOAT> for "
            f"embeddings) besides the metadata columns {', '.join(METADATA_TYPES)}; found {names}")
    return tuple(classified)


def _output_task(ctx: _Context, column: OutputColumn) -> str:
    if _is_string_type(column.type):
        return opts.CHAT
    if _normalise_type(column.type) == "ARRAY<FLOAT>":
        return opts.EMBEDDINGS
    raise ctx.error(
        f"OUTPUT column '{column.name}' has type {column.type}; allowed: STRING (chat "
        "completions) or ARRAY<FLOAT> (embeddings)")


def _resolve_keys(ctx: _Context,
                  raw: Mapping[str, str]) -> dict[str, tuple[opts.ConfigOption, str]]:
    """Maps every given key (or alias) to its option; unknown keys are an error."""
    resolved: dict[str, tuple[opts.ConfigOption, str]] = {}
    for key, value in raw.items():
        option = opts.lookup(key)
        if option is None:
            known = [k for o in opts.OPTIONS for k in (o.key, *o.aliases)]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ctx.error(f"unknown option '{key}'{hint}; valid options: "
                            f"{', '.join(sorted(o.key for o in opts.OPTIONS))}")
        if option.key in resolved:
            raise ctx.error(f"option '{option.key}' is given twice (as '{key}' and an alias)")
        resolved[option.key] = (option, value)
    return resolved


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
        'chat'
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

    input_columns = list(inputs)
    if len(input_columns) != 1 or not _is_string_type(input_columns[0].type):
        found = ", ".join(f"{c.name} {c.type}" for c in input_columns) or "none"
        raise ctx.error(f"INPUT must be exactly one STRING column, e.g. INPUT (`input` STRING); "
                        f"found: {found}")
    output_columns = _classify_outputs(ctx, list(outputs))
    value_column = next(c for c in output_columns if c.role == VALUE)
    output_task = _output_task(ctx, value_column)

    base_url, endpoint_task = _split_endpoint(ctx, resolved["endpoint"][1])
    if endpoint_task is not None and endpoint_task != output_task:
        raise ctx.error(
            f"option 'endpoint' selects {endpoint_task} but OUTPUT column '{value_column.name}' "
            f"is {value_column.type}; {endpoint_task} needs {_TASK_OUTPUT_TYPE[endpoint_task]}")
    task = output_task

    values: dict[str, Any] = {}
    for key, (option, raw) in resolved.items():
        if not option.applies_to(task, provider.name):
            wrong_provider = bool(option.providers) and provider.name not in option.providers
            scope = (f"the {', '.join(option.providers)} providers" if wrong_provider
                     else f"{'/'.join(option.tasks)} models")
            raise ctx.error(f"option '{key}' applies only to {scope}; this is a {provider.name} "
                            f"{task} model. Valid options: "
                            f"{', '.join(opts.valid_keys(task, provider.name))}")
        try:
            values[key] = option.parse(raw)
        except opts.OptionValueError as exc:
            raise ctx.error(f"option '{key}': {exc}") from None
    values["provider"] = provider.name
    api_key = Secret(values.pop("api-key"))
    spec = ModelSpec(name=name, provider=provider, task=task, base_url=base_url, api_key=api_key,
                     model=values["model"], input_column=input_columns[0], outputs=output_columns,
                     values=values)
    if spec.get(opts.RETRY_MAX_BACKOFF) < spec.get(opts.RETRY_INITIAL_BACKOFF):
        raise ctx.error("option 'retry-max-backoff' must not be shorter than "
                        "'retry-initial-backoff'")
    return spec


def masked_options(options: Mapping[str, str]) -> dict[str, str]:
    """The options with the api-key replaced by a mask, for Flink's catalog and for messages."""
    return {k: (MASK if opts.lookup(k) is opts.API_KEY else v) for k, v in options.items()}
