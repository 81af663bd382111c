"""A model's INPUT and OUTPUT columns: their types and, for OUTPUT, their roles.

OUTPUT columns named like the metadata of seed 003 (``error-string``, ``http-status-code``,
``http-headers-map``) or like the usage of a response (``prompt-tokens``, ``completion-tokens``,
``total-tokens``, ``finish-reason``, ``tool-calls``) are filled by the package; every other
column is a model column. One STRING model column is a plain chat answer, one ARRAY<FLOAT> an
embedding; anything else (several model columns, or one that is not STRING) is a structured
answer whose JSON Schema the columns define.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .options import Task, _TextEnum
from .types import FlinkType, parse_type, walk


class Role(_TextEnum):
    """What fills an OUTPUT column."""

    VALUE = "value"  # the plain answer: chat text or embedding vector
    FIELD = "field"  # one field of a structured answer
    ERROR_STRING = "error-string"
    HTTP_STATUS_CODE = "http-status-code"
    HTTP_HEADERS_MAP = "http-headers-map"
    PROMPT_TOKENS = "prompt-tokens"
    COMPLETION_TOKENS = "completion-tokens"
    TOTAL_TOKENS = "total-tokens"
    FINISH_REASON = "finish-reason"
    TOOL_CALLS = "tool-calls"


ERROR_ROLES = (Role.ERROR_STRING, Role.HTTP_STATUS_CODE, Role.HTTP_HEADERS_MAP)
USAGE_ROLES = (Role.PROMPT_TOKENS, Role.COMPLETION_TOKENS, Role.TOTAL_TOKENS, Role.FINISH_REASON,
               Role.TOOL_CALLS)
# The metadata columns, by name, with the type each must be declared with.
METADATA_TYPES: dict[Role, FlinkType] = {
    Role.ERROR_STRING: parse_type("STRING"),
    Role.HTTP_STATUS_CODE: parse_type("INT"),
    Role.HTTP_HEADERS_MAP: parse_type("MAP<STRING, ARRAY<STRING>>"),
    Role.PROMPT_TOKENS: parse_type("INT"),
    Role.COMPLETION_TOKENS: parse_type("INT"),
    Role.TOTAL_TOKENS: parse_type("INT"),
    Role.FINISH_REASON: parse_type("STRING"),
    Role.TOOL_CALLS: parse_type("STRING"),
}
# Metadata an embeddings response cannot fill.
CHAT_ONLY_ROLES = (Role.COMPLETION_TOKENS, Role.FINISH_REASON, Role.TOOL_CALLS)


@dataclass(frozen=True)
class InputColumn:
    """An INPUT column: name and type."""

    name: str
    type: FlinkType


@dataclass(frozen=True)
class OutputColumn:
    """An OUTPUT column: name, type, role and the COMMENT that describes it."""

    name: str
    type: FlinkType
    role: Role
    description: str | None = None


@dataclass(frozen=True)
class OutputSchema:
    """The OUTPUT columns of a model in declared order, with their roles.

    Attributes:
        columns: every OUTPUT column.
        task: chat or embeddings.
        structured: whether the chat answer is JSON parsed into the model columns.
    """

    columns: tuple[OutputColumn, ...]
    task: Task
    structured: bool

    @property
    def model_columns(self) -> tuple[OutputColumn, ...]:
        """The columns the model's answer fills (VALUE or FIELD), in declared order."""
        return tuple(c for c in self.columns if c.role in (Role.VALUE, Role.FIELD))

    @property
    def names(self) -> tuple[str, ...]:
        """Every column name, in declared order."""
        return tuple(c.name for c in self.columns)

    def has(self, *roles: Role) -> bool:
        """Whether any column has one of these roles."""
        return any(c.role in roles for c in self.columns)

    @property
    def keeps_errors(self) -> bool:
        """Whether a failed row can be emitted with its error (an error metadata column)."""
        return self.has(*ERROR_ROLES)

    def cells(self, values: Sequence[Any] | None, metadata: Mapping[Role, Any]) -> tuple[Any, ...]:
        """One output row in column order: the model columns from `values` (None: all null),
        the metadata columns from `metadata` (absent roles: null)."""
        answer = iter(values or ())
        return tuple(
            (next(answer, None) if values is not None else None)
            if c.role in (Role.VALUE, Role.FIELD) else metadata.get(c.role)
            for c in self.columns)


def classify_outputs(columns: Sequence[tuple[str, FlinkType, str | None]],
                     endpoint_task: Task | None) -> OutputSchema:
    """Roles and task of OUTPUT columns given as (name, type, comment).

    Raises:
        ValueError: with a message naming the column (the caller adds statement and model).
    """
    if not columns:
        raise ValueError("OUTPUT (...) is required: e.g. OUTPUT (`content` STRING) for chat, "
                         "OUTPUT (`embedding` ARRAY<FLOAT>) for embeddings, or several typed "
                         "columns for a structured answer")
    by_name = {role.value: role for role in METADATA_TYPES}
    model: list[tuple[str, FlinkType, str | None]] = []
    roles: dict[str, Role] = {}
    for name, type_, comment in columns:
        role = by_name.get(name)
        if role is None:
            model.append((name, type_, comment))
            continue
        expected = METADATA_TYPES[role]
        if not type_.same_root(expected) or (expected.is_string != type_.is_string):
            raise ValueError(f"metadata column '{name}' must have type {expected.sql()}, "
                             f"not {type_.sql()}")
        roles[name] = role
    if not model:
        raise ValueError("OUTPUT declares only metadata columns; add the column the answer goes "
                         "to, e.g. `content` STRING")
    task = endpoint_task
    if task is None:
        task = Task.EMBEDDINGS if len(model) == 1 and model[0][1].is_float_array else Task.CHAT
    structured = False
    if task is Task.EMBEDDINGS:
        if len(model) != 1 or not model[0][1].is_float_array:
            found = ", ".join(f"'{n}' {t.sql()}" for n, t, _ in model)
            raise ValueError("option 'endpoint' selects embeddings, which needs exactly one "
                             "OUTPUT column of type ARRAY<FLOAT> besides metadata columns "
                             f"(structured OUTPUT is for chat models); found {found}")
        wrong = [n for n, r in roles.items() if r in CHAT_ONLY_ROLES]
        if wrong:
            raise ValueError(f"metadata column '{wrong[0]}' is for chat models; an embeddings "
                             "response has only prompt-tokens and total-tokens")
    else:
        structured = len(model) > 1 or not model[0][1].is_string
        if structured:
            for name, type_, _ in model:
                check_structured_type(name, type_)
    value_role = Role.FIELD if structured else Role.VALUE
    result = tuple(OutputColumn(name, type_, roles.get(name, value_role), comment)
                   for name, type_, comment in columns)
    return OutputSchema(result, task, structured)


def check_structured_type(name: str, type_: FlinkType) -> None:
    """Raises ValueError when a type cannot be expressed as a field of a JSON answer."""
    for nested in walk(type_):
        if nested.kind == "MAP" and (nested.key is None or not nested.key.is_string):
            raise ValueError(f"column '{name}' has type {type_.sql()}: a structured answer's "
                             "MAP must have STRING keys (MAP<STRING, T>)")
