"""The typed description of a model: :class:`ModelSpec` and its parts, and :class:`CallSettings`
(one ML_PREDICT call site's settings).

The spec is the one typed description of a model that everything else is derived from: the DDL
checks, the JSON Schema of a structured answer, the PyFlink types of the function and its rows.
:mod:`.definition` builds it from CREATE MODEL's options and columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import options as opts
from .columns import InputColumn, OutputSchema
from .documents import DocumentSettings
from .options import OutputFormat, OverflowAction, Strategy, Task
from .prompt import PromptBuilder
from .providers import Provider
from .structured import StructuredOutput

MASK = "******"
DEFAULT_MAX_CONCURRENT = 10
ORDERED_QUEUE_FACTOR = 8
"""Rows the ordered async operator queues per request slot: an answered row waits there until
the rows before it are answered, without taking a request slot (the slowest request of a batch
would otherwise hold the others back: bench/chat_throughput.py --latency-max)."""
DEFAULT_OPERATOR_TIMEOUT_S = 180.0


class Secret:
    """A string that never shows itself in repr, str, logs or messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that sends it (the HTTP client)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (Secret, (self._value,))


@dataclass(frozen=True)
class Column:
    """A column of INPUT or OUTPUT as declared: name, type text and COMMENT."""

    name: str
    type: str
    comment: str | None = None


@dataclass(frozen=True)
class Connection:
    """Where and how requests go: base URL, key and the timeout of one request."""

    base_url: str
    api_key: Secret
    request_timeout: float


@dataclass(frozen=True)
class FailurePolicy:
    """What happens when a request fails.

    Attributes:
        strategy: error-handling-strategy.
        fallback: what a row that still fails gets: FAILOVER or IGNORE (RETRY's
            retry-fallback-strategy, otherwise the strategy itself).
        max_retries: retries of one request (0 unless RETRY).
        initial_backoff: first backoff, seconds.
        max_backoff: largest backoff we choose, seconds.
        output_retries: re-asks of a structured answer that does not fit the OUTPUT columns.
    """

    strategy: Strategy
    fallback: Strategy
    max_retries: int
    initial_backoff: float
    max_backoff: float
    output_retries: int = 0


@dataclass(frozen=True)
class ContextLimit:
    """max-context-size and context-overflow-action."""

    max_tokens: int
    action: OverflowAction


@dataclass(frozen=True)
class StreamSettings:
    """A streamed chat answer ('stream' = 'true').

    Attributes:
        idle_timeout: the longest wait for the next chunk once the stream has started.
    """

    idle_timeout: float


@dataclass(frozen=True)
class Throughput:
    """Embedding batches, client-side limits and the response cache of a model (all per parallel
    instance of the ML_PREDICT operator).

    Attributes:
        batch_size: most rows in one embeddings request (1: one request per row; chat: 1).
        batch_max_tokens: most input tokens summed over one embeddings request (None: no cap).
        batch_linger: seconds an embeddings batch that is not full waits for more rows.
        requests_per_minute: the 'requests-per-minute' limit (None: none).
        tokens_per_minute: the 'tokens-per-minute' limit of estimated tokens (None: none).
        cache_entries: answers the cache keeps (0: no cache).
    """

    batch_size: int = 1
    batch_max_tokens: int | None = None
    batch_linger: float = opts.DEFAULT_BATCH_LINGER_S
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    cache_entries: int = 0


@dataclass(frozen=True)
class ChatSettings:
    """How a chat request is built.

    Attributes:
        system_prompt: the system message.
        prompt: builds the user message from the INPUT values.
        body: OpenAI request fields (temperature, top_p, stop, max_tokens, n, ...).
        extra_body: provider-only request fields (DashScope's top_k, ...).
        response_format: the response_format field of a plain model ('text', 'json_object').
        structured: the schema and validator of a structured answer (None for plain text).
        output_format: how a structured model asks for JSON.
        stream: how a streamed answer is read (None: not streamed).
        documents: the documents sent before the user message (None: none).
    """

    system_prompt: str
    prompt: PromptBuilder
    body: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    response_format: str | None = None
    structured: StructuredOutput | None = None
    output_format: OutputFormat = OutputFormat.JSON_SCHEMA
    stream: StreamSettings | None = None
    documents: DocumentSettings | None = None


@dataclass(frozen=True)
class EmbeddingSettings:
    """How an embeddings request is built.

    Attributes:
        body: OpenAI request fields (dimensions).
        extra_body: provider-only request fields.
        dimension: the vector length asked for, if any.
        max_input_tokens: embeddings max-tokens: longer input is cut at its tail.
    """

    body: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    dimension: int | None = None
    max_input_tokens: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything a Flink worker needs to call one model. Frozen and picklable.

    Attributes:
        name: the model's name in SQL.
        provider: the provider description.
        task: chat or embeddings.
        model: the provider's model name.
        connection: base URL, key, request timeout.
        inputs: the INPUT columns, in order (DESCRIPTOR columns map to them by position).
        outputs: the OUTPUT columns with their roles.
        failure: strategy, retries and backoff.
        context: the input token limit, if any.
        chat: request settings of a chat model (None for embeddings).
        embedding: request settings of an embeddings model (None for chat).
        throughput: embedding batches, client-side limits, response cache.
        options: the typed value of every option given (aliases resolved), for reference.
    """

    name: str
    provider: Provider
    task: Task
    model: str
    connection: Connection
    inputs: tuple[InputColumn, ...]
    outputs: OutputSchema
    failure: FailurePolicy
    context: ContextLimit | None = None
    chat: ChatSettings | None = None
    embedding: EmbeddingSettings | None = None
    throughput: Throughput = field(default_factory=Throughput)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL."""
        return self.connection.base_url

    @property
    def api_key(self) -> Secret:
        """The key, masked everywhere except in the HTTP header."""
        return self.connection.api_key

    @property
    def prompt(self) -> PromptBuilder:
        """Builds the text sent for a row (chat: the user message; embeddings: the input)."""
        return self.chat.prompt if self.chat is not None else PromptBuilder(self.inputs)


@dataclass(frozen=True)
class CallSettings:
    """How Flink runs one ML_PREDICT call (its CONFIG map, defaults from the table config).

    Attributes:
        asynchronous: async scalar function (True) or a synchronous one.
        max_concurrent: requests in flight per parallel instance (Flink's capacity).
        timeout: Flink's operator timeout for one row, in seconds (from the moment it gets a
            request slot when ``queue_factor`` > 1: see ``operator_timeout``).
        ordered: ORDERED output; PyFlink's async scalar operator always emits in order.
        queue_factor: PyFlink's async operator queue holds ``max_concurrent * queue_factor``
            rows (in flight, or answered and waiting for their turn to be emitted in order);
            the predictor lets at most ``max_concurrent`` of them have a request out. 1: the
            operator's capacity alone bounds them (SQL-client functions: the user SETs it).
    """

    asynchronous: bool = True
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    timeout: float = DEFAULT_OPERATOR_TIMEOUT_S
    ordered: bool = True
    queue_factor: int = 1

    @property
    def queue_capacity(self) -> int:
        """The capacity of PyFlink's async operator (rows in its queue per parallel instance)."""
        return self.max_concurrent * self.queue_factor

    @property
    def operator_timeout(self) -> float:
        """PyFlink's timeout of a row in its async operator, in seconds: ``timeout`` counts from
        the moment the row gets a request slot, and a row can wait for one while the rows ahead
        of it in the queue (``queue_factor - 1`` slot generations) use theirs. A backstop: each
        row's budget ends before it."""
        return self.timeout * self.queue_factor

    @property
    def row_budget(self) -> float:
        """Seconds a row may spend on attempts and waits: inside the operator timeout, with a margin
        so that a row given up under IGNORE is emitted before Flink's timeout fails the job."""
        margin = min(max(1.0, 0.1 * self.timeout), 0.5 * self.timeout)
        return self.timeout - margin


def masked_options(options: Mapping[str, str]) -> dict[str, str]:
    """The options with the api-key replaced by a mask, for Flink's catalog and for messages."""
    return {k: (MASK if opts.lookup(k) is opts.API_KEY else v) for k, v in options.items()}
