"""Every CREATE MODEL option, declared once.

The parser (:mod:`flink_ml_predict.model`), the README's option reference and the tests all read
:data:`OPTIONS`. Keys are kebab-case as in Flink; seed 000 spells two of them with underscores
(``top_p``, ``max_tokens``) and those spellings are accepted as aliases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import option_values as values


class _TextEnum(str, Enum):
    """An Enum whose members are their text (in str(), f-strings and comparisons)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Task(_TextEnum):
    """What a model does: chat completions or embeddings."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"


CHAT = Task.CHAT
EMBEDDINGS = Task.EMBEDDINGS
TASKS = tuple(Task)


class Strategy(_TextEnum):
    """error-handling-strategy (and, without RETRY, retry-fallback-strategy)."""

    RETRY = "RETRY"
    FAILOVER = "FAILOVER"
    IGNORE = "IGNORE"


class OverflowAction(_TextEnum):
    """context-overflow-action: what happens to an input over max-context-size."""

    TRUNCATED_TAIL = "truncated-tail"
    TRUNCATED_TAIL_LOG = "truncated-tail-log"
    TRUNCATED_HEAD = "truncated-head"
    TRUNCATED_HEAD_LOG = "truncated-head-log"
    SKIPPED = "skipped"
    SKIPPED_LOG = "skipped-log"

    @property
    def logs(self) -> bool:
        """Whether the -log variant was chosen."""
        return self.value.endswith("-log")

    @property
    def skips(self) -> bool:
        """Whether the row is skipped (rather than truncated)."""
        return self.value.startswith("skipped")

    @property
    def keeps_head(self) -> bool:
        """Whether truncation keeps the head (cuts the tail)."""
        return self.value.startswith("truncated-tail")


class OutputFormat(_TextEnum):
    """output-format: how a structured model asks for JSON."""

    JSON_SCHEMA = "json-schema"
    JSON_OBJECT = "json-object"

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
DEFAULT_RETRY_NUM = 100
DEFAULT_REQUEST_TIMEOUT_S = 60.0
# A streamed or document model waits for its answer as long as the row's budget allows (the
# operator timeout bounds it): a first answer about a new document waits for its parsing.
DEFAULT_LONG_REQUEST_TIMEOUT_S = 600.0
DEFAULT_STREAM_IDLE_TIMEOUT_S = 30.0
DEFAULT_RETRY_INITIAL_BACKOFF_S = 0.5
DEFAULT_RETRY_MAX_BACKOFF_S = 8.0

DEFAULT_OUTPUT_RETRY_NUM = 2
DEFAULT_BATCH_LINGER_S = 0.005
DEFAULT_CACHE_MAX_ENTRIES = 10_000
DEFAULT_COMPLETION_TOKENS = 256
"""The completion tokens assumed per choice by 'tokens-per-minute' when 'max-tokens' is not set."""

STRATEGIES = tuple(s.value for s in Strategy)
FALLBACK_STRATEGIES = (Strategy.FAILOVER.value, Strategy.IGNORE.value)
OVERFLOW_ACTIONS = tuple(a.value for a in OverflowAction)
RESPONSE_FORMATS = ("text", "json_object")


class OptionValueError(ValueError):
    """A value that does not fit its option; the message says what is allowed."""


@dataclass(frozen=True)
class ConfigOption:
    """One CREATE MODEL option.

    Attributes:
        key: the kebab-case key used in ``WITH (...)``.
        type_name: the type shown in the option reference.
        parse: turns the string value into a typed value, raising OptionValueError.
        default: the value used when the option is absent (None = not sent).
        description: one sentence for the option reference.
        required: whether the option must be given.
        tasks: the tasks the option applies to (both when empty).
        providers: the providers that accept the option (all when empty).
        aliases: other spellings accepted for the key.
        request_field: the request body field the value is sent as, if any.
    """

    key: str
    type_name: str
    parse: Callable[[str], Any]
    default: Any = None
    description: str = ""
    required: bool = False
    tasks: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    request_field: str | None = None

    def applies_to(self, task: str, provider: str) -> bool:
        """Whether the option is valid for a model of this task and provider."""
        return (not self.tasks or task in self.tasks) and (
            not self.providers or provider in self.providers
        )


# --- value parsers -------------------------------------------------------------------------


def _string(value: str) -> str:
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise OptionValueError("must not be empty")
    return value


def _number(kind: type, low: float | None, high: float | None, low_open: bool = False,
            high_open: bool = False) -> Callable[[str], Any]:
    """A parser for an int or float in a range; open ends are excluded."""

    def show(bound: float) -> str:
        return str(bound) if kind is int else f"{bound:g}"

    def describe() -> str:
        if low is not None and high is not None:
            return f"{'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
        if low is not None:
            return f"{'>' if low_open else '>='} {show(low)}"
        assert high is not None
        return f"{'<' if high_open else '<='} {show(high)}"

    def parse(value: str) -> Any:
        text = value.strip()
        try:
            number = kind(text)
        except ValueError:
            raise OptionValueError(
                f"'{value}' is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if kind is float and number != number:  # NaN
            raise OptionValueError("NaN is not allowed")
        too_low = low is not None and (number <= low if low_open else number < low)
        too_high = high is not None and (number >= high if high_open else number > high)
        if too_low or too_high:
            raise OptionValueError(f"{text} is outside the allowed range {describe()}")
        return number

    return parse


def _enum(allowed: Iterable[Any], case_sensitive: bool = False) -> Callable[[str], Any]:
    """A parser returning the matching choice (an Enum member when given Enum members)."""
    choices = tuple(allowed)

    def text(choice: Any) -> str:
        return str(choice.value if isinstance(choice, Enum) else choice)

    def parse(value: str) -> Any:
        for choice in choices:
            name = text(choice)
            if value == name or (not case_sensitive and value.strip().lower() == name.lower()):
                return choice
        raise OptionValueError(f"'{value}' is not one of {', '.join(map(text, choices))}")

    return parse


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise OptionValueError(f"'{value}' is not true or false")


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser of :mod:`.option_values` whose ValueError becomes an OptionValueError."""

    def run(value: str) -> Any:
        try:
            return parse(value)
        except OptionValueError:
            raise
        except ValueError as exc:
            raise OptionValueError(str(exc)) from None

    return run


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|milli|millis|s|sec|secs|second|seconds|min|mins"
                       r"|minute|minutes|m|h|hour|hours)?\s*$", re.I)
_DURATION_UNITS = {"ms": 0.001, "milli": 0.001, "millis": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0,
                   "second": 1.0, "seconds": 1.0, "min": 60.0, "mins": 60.0, "minute": 60.0,
                   "minutes": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0, "hours": 3600.0}


def parse_duration(value: str) -> float:
    """Seconds of a Flink-style duration ('500ms', '30 s', '3min', '1h'; bare numbers are ms)."""
    match = _DURATION.match(value)
    if not match:
        raise OptionValueError(f"'{value}' is not a duration such as 500ms, 30s, 3min")
    amount = float(match.group(1))
    unit = (match.group(2) or "ms").lower()
    seconds = amount * _DURATION_UNITS[unit]
    if seconds <= 0:
        raise OptionValueError(f"'{value}' must be longer than 0")
    return seconds


# --- the options ---------------------------------------------------------------------------

PROVIDER = ConfigOption("provider", "String", _string, required=True,
                        description="The model provider: openai, qwen or bailian.")
ENDPOINT = ConfigOption(
    "endpoint", "String", _non_empty, required=True,
    description="Base URL (e.g. https://dashscope.aliyuncs.com/compatible-mode/v1) or full URL "
    "ending in /chat/completions or /embeddings; a full URL also selects the task.")
API_KEY = ConfigOption("api-key", "String", _non_empty, required=True,
                       description="API key sent as a Bearer token. Use '${ENV_VAR}' to keep it "
                       "out of scripts; it is masked in logs, errors, plans and Flink's catalog.")
MODEL = ConfigOption("model", "String", _non_empty, required=True,
                     description="Model name, e.g. gpt-4o-mini, qwen-plus, text-embedding-v4.")

ERROR_HANDLING_STRATEGY = ConfigOption(
    "error-handling-strategy", "Enum", _enum(Strategy), Strategy.RETRY,
    description="RETRY: retry what can succeed later, then apply retry-fallback-strategy; "
    "FAILOVER: fail the job; IGNORE: emit the row's error (metadata columns) or drop it with a "
    "warning.")
RETRY_NUM = ConfigOption("retry-num", "Integer", _number(int, 0, None), DEFAULT_RETRY_NUM,
                         description="Maximum number of retries of one request under RETRY.")
RETRY_FALLBACK_STRATEGY = ConfigOption(
    "retry-fallback-strategy", "Enum", _enum((Strategy.FAILOVER, Strategy.IGNORE)),
    Strategy.FAILOVER,
    description="What RETRY does when retries are exhausted or the error is permanent: FAILOVER "
    "or IGNORE.")
RETRY_INITIAL_BACKOFF = ConfigOption(
    "retry-initial-backoff", "Duration", parse_duration, DEFAULT_RETRY_INITIAL_BACKOFF_S,
    description="First backoff of exponential backoff with full jitter (doubling per retry); "
    "no retry is sent sooner than half of it after a failure. After a 429 without Retry-After, "
    "the model's shared cooldown starts at it too.")
RETRY_MAX_BACKOFF = ConfigOption(
    "retry-max-backoff", "Duration", parse_duration, DEFAULT_RETRY_MAX_BACKOFF_S,
    description="Upper bound of one backoff; a server's Retry-After is honoured up to the row's "
    "remaining time budget.")
REQUEST_TIMEOUT = ConfigOption(
    "request-timeout", "Duration", parse_duration, DEFAULT_REQUEST_TIMEOUT_S,
    description="How long one request may wait for the model's answer (read/write; connecting "
    "gets at least 10s); with 'stream' = 'true', for its first chunk. Default 60s, but 10min for "
    "a streamed model or one with documents, so that the operator timeout bounds a first answer "
    "that waits for document parsing. All attempts of a row also end inside the operator timeout "
    "(ML_PREDICT's 'timeout'), so IGNORE never turns into a job failure.")
MAX_CONTEXT_SIZE = ConfigOption(
    "max-context-size", "Integer", _number(int, 1, None),
    description="Maximum tokens of the input text; context-overflow-action applies above it.")
CONTEXT_OVERFLOW_ACTION = ConfigOption(
    "context-overflow-action", "Enum", _enum(OverflowAction, case_sensitive=False),
    OverflowAction.TRUNCATED_TAIL, description="What to do with an input over "
    "max-context-size: truncate its tail or head, or skip the row; the -log variants also log it.")

SYSTEM_PROMPT = ConfigOption("system-prompt", "String", _string, DEFAULT_SYSTEM_PROMPT,
                             tasks=(CHAT,), description="The system message of the chat.")
TEMPERATURE = ConfigOption("temperature", "Double", _number(float, 0.0, 2.0, high_open=True),
                           tasks=(CHAT,), request_field="temperature",
                           description="Sampling temperature in [0, 2) (standard field).")
TOP_P = ConfigOption("top-p", "Double", _number(float, 0.0, 1.0, low_open=True), tasks=(CHAT,),
                     aliases=("top_p",), request_field="top_p",
                     description="Nucleus sampling probability in (0, 1] (standard field).")
STOP = ConfigOption(
    "stop", "String / JSON array", _checked(values.stop), tasks=(CHAT,), request_field="stop",
    description="Stop generating before these: one string ('你好'), comma-separated strings "
    "('END, STOP'), or a JSON array of strings ('[\"你好\", \"天气\"]'; for a string with a comma "
    "or starting with '['), of token ids ('[108386, 104307]') or of token-id arrays "
    "('[[108386, 103924], [35946, 101243]]'); token ids are DashScope's (qwen, bailian); one "
    "kind per list. Sent as the standard 'stop' field.")
MAX_TOKENS = ConfigOption(
    "max-tokens", "Long", _number(int, 1, None), aliases=("max_tokens",),
    description="Chat: the maximum number of tokens generated (standard 'max_tokens' field). "
    "Embeddings: the maximum tokens of one row's input; longer input is cut at its tail.")
N = ConfigOption("n", "Long", _number(int, 1, 128), tasks=(CHAT,), request_field="n",
                 description="Choices per input row; each choice becomes its own output row.")
PRESENCE_PENALTY = ConfigOption("presence-penalty", "Double", _number(float, -2.0, 2.0),
                                tasks=(CHAT,), request_field="presence_penalty",
                                description="Presence penalty in [-2, 2].")
SEED = ConfigOption("seed", "Integer", _number(int, 0, 2**64 - 1), tasks=(CHAT,),
                    request_field="seed",
                    description="Seed for best-effort deterministic sampling: an unsigned 64-bit "
                    "integer, 0 to 18446744073709551615. Sent as the standard 'seed' field.")
RESPONSE_FORMAT = ConfigOption("response-format", "Enum", _enum(RESPONSE_FORMATS, True),
                               tasks=(CHAT,),
                               description="text or json_object (the prompt must mention JSON).")
PROMPT_TEMPLATE = ConfigOption(
    "prompt-template", "String", _non_empty, tasks=(CHAT,),
    description="The user message built from the INPUT columns: {column} is replaced by the "
    "column's value, {{ and }} are literal braces, \\n a new line. Without it, one input column "
    "is sent as its text and several as a JSON object (see 'Several input columns').")
OUTPUT_FORMAT = ConfigOption(
    "output-format", "Enum", _enum(OutputFormat), OutputFormat.JSON_SCHEMA, tasks=(CHAT,),
    description="Structured models only: json-schema sends the OUTPUT columns as a strict JSON "
    "Schema (response_format json_schema); json-object, for servers without json_schema, "
    "sends response_format json_object and the schema in the system message.")
OUTPUT_RETRY_NUM = ConfigOption(
    "output-retry-num", "Integer", _number(int, 0, 10), DEFAULT_OUTPUT_RETRY_NUM, tasks=(CHAT,),
    description="Structured models only: how many times an answer that is not valid JSON or "
    "does not fit the OUTPUT columns is asked again (with the reason) before the row fails.")
DIMENSION = ConfigOption("dimension", "Long", _number(int, 1, None), tasks=(EMBEDDINGS,),
                         request_field="dimensions",
                         description="Length of the embedding vector (sent as 'dimensions').")

BATCH_SIZE = ConfigOption(
    "batch-size", "Integer", _number(int, 1, None), tasks=(EMBEDDINGS,),
    description="Most rows in one embeddings request: the rows in flight in one parallel "
    "instance are sent together. Default: the provider's limit (openai 2048, qwen and bailian "
    "10), which is also the largest value allowed; '1' sends one request per row.")
BATCH_MAX_TOKENS = ConfigOption(
    "batch-max-tokens", "Long", _number(int, 1, None), tasks=(EMBEDDINGS,),
    description="Most input tokens, summed over its rows, of one embeddings request. Default: the "
    "provider's cap (openai 300000; qwen and bailian: none, each row is at most 8192).")
BATCH_LINGER = ConfigOption(
    "batch-linger", "Duration", parse_duration, DEFAULT_BATCH_LINGER_S, tasks=(EMBEDDINGS,),
    description="How long an embeddings batch that is not full waits for more rows; a full "
    "batch goes at once.")
REQUESTS_PER_MINUTE = ConfigOption(
    "requests-per-minute", "Integer", _number(int, 1, None),
    description="Client-side limit of each parallel instance, paced per second (a burst of at "
    "most a second's share). For a provider limit L and an operator parallelism P: L / P.")
TOKENS_PER_MINUTE = ConfigOption(
    "tokens-per-minute", "Long", _number(int, 1, None),
    description="Client-side limit of estimated tokens of each parallel instance, paced per "
    "second: prompt tokens + max-tokens x n (256 x n without max-tokens); embeddings: input "
    "tokens. For a provider limit L and an operator parallelism P: L / P.")
CACHE = ConfigOption(
    "cache", "Boolean", _boolean, False,
    description="Identical requests of one parallel instance share one call while in flight and "
    "reuse its successful answer afterwards; failures are never kept. A cached answer repeats "
    "the same sample (n > 1, temperature > 0).")
CACHE_MAX_ENTRIES = ConfigOption(
    "cache-max-entries", "Integer", _number(int, 1, None), DEFAULT_CACHE_MAX_ENTRIES,
    description="Most answers 'cache' keeps per parallel instance; the least recently used go "
    "first.")

_DASHSCOPE = ("qwen", "bailian")
TOP_K = ConfigOption("top-k", "Integer", _checked(values.top_k), tasks=(CHAT,),
                     providers=_DASHSCOPE, aliases=("top_k",), request_field="top_k",
                     description="DashScope: size of the sampling candidate set, an integer >= 1; "
                     "a value above 100 disables top-k (only top-p applies), as does leaving the "
                     "option out (DashScope's None). Sent beside the standard fields "
                     "(extra_body).")
REPETITION_PENALTY = ConfigOption("repetition-penalty", "Double", _number(float, 0.0, None, True),
                                  tasks=(CHAT,), providers=_DASHSCOPE,
                                  aliases=("repetition_penalty",),
                                  request_field="repetition_penalty",
                                  description="DashScope: repetition penalty, > 0 (1.0 = none; "
                                  "higher repeats less). Sent beside the standard fields "
                                  "(extra_body).")
ENABLE_SEARCH = ConfigOption("enable-search", "Boolean", _boolean, tasks=(CHAT,),
                             providers=_DASHSCOPE, aliases=("enable_search",),
                             request_field="enable_search",
                             description="DashScope: let the model use internet search "
                             "results (true/false). Sent beside the standard fields (extra_body).")

STREAM = ConfigOption(
    "stream", "Boolean", _boolean, False, tasks=(CHAT,),
    description="Ask for a streamed answer (stream, with stream_options.include_usage) and "
    "assemble it before the row is emitted; a cut stream is retried like a failed request. Some "
    "DashScope models answer only in stream mode (see 'Qwen: documents and streaming').")
STREAM_IDLE_TIMEOUT = ConfigOption(
    "stream-idle-timeout", "Duration", parse_duration, DEFAULT_STREAM_IDLE_TIMEOUT_S,
    tasks=(CHAT,), description="With 'stream' = 'true': the longest wait for the next chunk "
    "once the stream has started; a longer pause is a cut stream (retried).")
TOOLS = ConfigOption(
    "tools", "JSON array", _checked(values.tools), tasks=(CHAT,), request_field="tools",
    description="Tools the model may call, a JSON array of tool objects sent as given (standard "
    "'tools' field); the calls come back in the 'tool-calls' STRING column (JSON), since a SQL "
    "job does not run them.")
DOCUMENTS = ConfigOption(
    "documents", "String / JSON array", _checked(values.documents), tasks=(CHAT,),
    providers=_DASHSCOPE,
    description="Documents for every row (qwen-long): file ids ('fileid://file-fe-xxx', several "
    "as 'fileid://a,fileid://b') and/or inline text, one value or a JSON array of values; sent "
    "as system messages after the system prompt (all file ids in one, one per text).")
DOCUMENT_COLUMN = ConfigOption(
    "document-column", "String", _non_empty, tasks=(CHAT,), providers=_DASHSCOPE,
    description="An INPUT column holding each row's document (a 'fileid://...' value or inline "
    "text), sent as a system message and not in the user message; a row whose document is "
    "null is skipped.")
INCREMENTAL_OUTPUT = ConfigOption(
    "incremental-output", "Boolean", _boolean, tasks=(CHAT,), providers=_DASHSCOPE,
    aliases=("incremental_output",),
    description="DashScope native API only; accepted with 'stream' = 'true' (either value): the "
    "compatible mode always streams increments, which are assembled into the row's full answer. "
    "Nothing is sent.")
RESULT_FORMAT = ConfigOption(
    "result-format", "Enum", _checked(values.result_format), tasks=(CHAT,),
    providers=_DASHSCOPE,
    aliases=("result_format",),
    description="DashScope native API only: 'message' is accepted (the compatible mode always "
    "answers in the message format) and nothing is sent; 'text' is an error.")
NATIVE_PROMPT = ConfigOption(
    "prompt", "String", _checked(values.native_only(
        "the user message is built from the INPUT columns ('prompt-template') and the system "
        "message from 'system-prompt'")),
    tasks=(CHAT,), providers=_DASHSCOPE,
    description="DashScope native API only: an error; use 'prompt-template' (user message from "
    "the INPUT columns) and 'system-prompt'.")
MESSAGES = ConfigOption(
    "messages", "JSON array", _checked(values.native_only(
        "the messages are built for each row: 'system-prompt', then 'documents' / "
        "'document-column', then the user message from the INPUT columns")),
    tasks=(CHAT,), providers=_DASHSCOPE,
    description="Not an option: the messages of each row are 'system-prompt', the documents, "
    "then the user message from the INPUT columns.")

OPTIONS: tuple[ConfigOption, ...] = (
    PROVIDER, ENDPOINT, API_KEY, MODEL,
    ERROR_HANDLING_STRATEGY, RETRY_NUM, RETRY_FALLBACK_STRATEGY, RETRY_INITIAL_BACKOFF,
    RETRY_MAX_BACKOFF, REQUEST_TIMEOUT, MAX_CONTEXT_SIZE, CONTEXT_OVERFLOW_ACTION,
    SYSTEM_PROMPT, TEMPERATURE, TOP_P, STOP, MAX_TOKENS, N, PRESENCE_PENALTY, SEED,
    RESPONSE_FORMAT, PROMPT_TEMPLATE, OUTPUT_FORMAT, OUTPUT_RETRY_NUM, DIMENSION, BATCH_SIZE,
    BATCH_MAX_TOKENS, BATCH_LINGER, REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE, CACHE,
    CACHE_MAX_ENTRIES, TOP_K, REPETITION_PENALTY, ENABLE_SEARCH, STREAM, STREAM_IDLE_TIMEOUT,
    TOOLS, DOCUMENTS, DOCUMENT_COLUMN, INCREMENTAL_OUTPUT, RESULT_FORMAT, NATIVE_PROMPT, MESSAGES,
)
_BY_KEY = {key: option for option in OPTIONS for key in (option.key, *option.aliases)}


def lookup(key: str) -> ConfigOption | None:
    """The option declared under this key or alias, or None."""
    return _BY_KEY.get(key)


def valid_keys(task: str, provider: str) -> list[str]:
    """The keys a model of this task and provider accepts, sorted."""
    return sorted(option.key for option in OPTIONS if option.applies_to(task, provider))


def options_markdown(provider: str) -> str:
    """The option reference of one provider as a Markdown table (used in the README)."""
    rows = ["| Key | Task | Required | Default | Type | Description |",
            "|---|---|---|---|---|---|"]
    for option in OPTIONS:
        if option.providers and provider not in option.providers:
            continue
        key = f"`{option.key}`" + "".join(f" / `{alias}`" for alias in option.aliases)
        task = "/".join(option.tasks) if option.tasks else "all"
        default = "(none)" if option.default is None else f"`{_show_default(option.default)}`"
        rows.append(f"| {key} | {task} | {'yes' if option.required else 'no'} | {default} | "
                    f"{option.type_name} | {option.description} |")
    return "\n".join(rows)


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return f"{int(value)}s" if value >= 1 else f"{value:g}s"
    if isinstance(value, float):
        return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"
    return str(value)
