"""Structured answers: the OUTPUT columns as a JSON Schema, and answers validated against them.

From the model columns of a structured model, :class:`StructuredOutput` derives

* one JSON Schema (every field required, no additional properties, a column's COMMENT as its
  description), sent as ``response_format = {"type": "json_schema", "json_schema": {"name",
  "strict": true, "schema"}}``, or described in the system message for servers that only know
  ``json_object``;
* a pydantic model of the same shape that validates an answer and converts it to the Python
  values PyFlink expects for the declared Flink types.

Type mapping (also in the README):

=====================  =================================  ==========================
Flink type             JSON Schema                        Python value
=====================  =================================  ==========================
STRING, VARCHAR, CHAR  string                             str
BOOLEAN                boolean                            bool
TINYINT ... BIGINT     integer (range checked)            int
FLOAT, DOUBLE          number                             float
DECIMAL(p, s)          number (rounded to s decimals)     decimal.Decimal
DATE                   string, YYYY-MM-DD                 datetime.date
TIMESTAMP(p)           string, YYYY-MM-DD HH:MM:SS[.f]    datetime.datetime (naive)
ARRAY<T>               array of T                         list
MAP<STRING, T>         array of {key, value} objects      dict
ROW<...>               object, every field required       Row
=====================  =================================  ==========================

A nullable column (no NOT NULL) allows ``null``; NOT NULL columns do not.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, create_model

from .columns import OutputColumn
from .types import INTEGER_RANGES, FlinkType

RAW_PREVIEW_CHARS = 200
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL | re.IGNORECASE)


class InvalidAnswer(ValueError):
    """An answer that is not JSON or does not fit the OUTPUT columns; str() says why."""

    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw

    def describe(self) -> str:
        """The reason and the start of the raw answer, for error-string and messages."""
        preview = self.raw if len(self.raw) <= RAW_PREVIEW_CHARS else (
            self.raw[:RAW_PREVIEW_CHARS] + "...")
        return f"the answer does not fit the OUTPUT columns: {self.reason}; answer: {preview!r}"


# --- JSON Schema ---------------------------------------------------------------------------


def _schema(t: FlinkType, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any]
    if t.is_string:
        schema = {"type": "string"}
    elif t.kind == "BOOLEAN":
        schema = {"type": "boolean"}
    elif t.kind in INTEGER_RANGES:
        schema = {"type": "integer"}
    elif t.kind in ("FLOAT", "DOUBLE", "DECIMAL"):
        schema = {"type": "number"}
    elif t.kind == "DATE":
        schema = {"type": "string"}
        description = _join(description, "a date as YYYY-MM-DD")
    elif t.kind == "TIMESTAMP":
        schema = {"type": "string"}
        description = _join(description, "a date and time as YYYY-MM-DD HH:MM:SS")
    elif t.kind == "ARRAY":
        assert t.element is not None
        schema = {"type": "array", "items": _schema(t.element)}
    elif t.kind == "MAP":
        assert t.element is not None
        schema = {"type": "array", "items": _object({"key": _schema(FlinkType("STRING", False)),
                                                     "value": _schema(t.element)})}
        description = _join(description, "a map, as a list of key/value entries")
    elif t.kind == "ROW":
        schema = _object({f.name: _schema(f.type, f.description) for f in t.fields})
    else:  # parse_type only produces the kinds above
        raise ValueError(f"type {t.sql()} has no JSON form")
    if description:
        schema = {**schema, "description": description}
    if t.nullable:
        if schema["type"] == "object":
            return {"anyOf": [schema, {"type": "null"}]}
        schema = {**schema, "type": [schema["type"], "null"]}
    return schema


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _join(first: str | None, second: str) -> str:
    return f"{first} ({second})" if first else second


# --- validation and conversion ---------------------------------------------------------------


def _decimal(precision: int, scale: int) -> Any:
    quantum = decimal.Decimal(1).scaleb(-scale)

    def check(value: decimal.Decimal) -> decimal.Decimal:
        rounded = value.quantize(quantum, rounding=decimal.ROUND_HALF_UP)
        if rounded.adjusted() >= precision - scale:
            raise ValueError(f"{value} does not fit DECIMAL({precision}, {scale})")
        return rounded

    return Annotated[decimal.Decimal, Field(allow_inf_nan=False), AfterValidator(check)]


def _naive(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=None)


def _map_entries(value: Any) -> Any:
    # Accept the schema's entry list and, from json_object servers, a plain JSON object.
    if isinstance(value, dict):
        return [{"key": k, "value": v} for k, v in value.items()]
    return value


def _entries_to_dict(entries: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for entry in entries:
        if entry.key in result:
            raise ValueError(f"map key {entry.key!r} appears twice")
        result[entry.key] = entry.value
    return result


_STRICT_OBJECT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def _annotation(t: FlinkType, names: _Counter) -> Any:
    annotation: Any
    if t.is_string:
        annotation = str
    elif t.kind == "BOOLEAN":
        annotation = bool
    elif t.kind in INTEGER_RANGES:
        bound = INTEGER_RANGES[t.kind]
        annotation = Annotated[int, Field(ge=-bound, lt=bound)]
    elif t.kind in ("FLOAT", "DOUBLE"):
        annotation = Annotated[float, Field(allow_inf_nan=False)]
    elif t.kind == "DECIMAL":
        annotation = _decimal(*t.params)
    elif t.kind == "DATE":
        annotation = datetime.date
    elif t.kind == "TIMESTAMP":
        annotation = Annotated[datetime.datetime, AfterValidator(_naive)]
    elif t.kind == "ARRAY":
        assert t.element is not None
        annotation = list[_annotation(t.element, names)]  # type: ignore[misc]
    elif t.kind == "MAP":
        assert t.element is not None
        entry = create_model(names.next("Entry"), __config__=_STRICT_OBJECT,
                             key=(str, ...), value=(_annotation(t.element, names), ...))
        annotation = Annotated[list[entry], BeforeValidator(_map_entries),  # type: ignore[valid-type]
                               AfterValidator(_entries_to_dict)]
    elif t.kind == "ROW":
        annotation = _model(names.next("Row"), [(f.name, f.type) for f in t.fields], names)
    else:
        raise ValueError(f"type {t.sql()} has no JSON form")
    return annotation | None if t.nullable else annotation


def _model(name: str, fields: Sequence[tuple[str, FlinkType]], names: _Counter) -> Any:
    # Field names are positional (f0, f1, ...) with the column name as alias: column names need
    # not be Python identifiers (`key-phrases`) and must not clash with BaseModel attributes.
    definitions: dict[str, Any] = {
        f"f{i}": (_annotation(t, names), Field(..., alias=field_name))
        for i, (field_name, t) in enumerate(fields)
    }
    return create_model(name, __config__=_STRICT_OBJECT, **definitions)


def _to_flink(value: Any, t: FlinkType) -> Any:
    """A validated value as PyFlink expects it for type t (ROW -> Row, recursively)."""
    if value is None:
        return None
    if t.kind == "ROW":
        from pyflink.common import Row

        return Row(*(_to_flink(getattr(value, f"f{i}"), f.type) for i, f in enumerate(t.fields)))
    if t.kind == "ARRAY":
        assert t.element is not None
        return [_to_flink(v, t.element) for v in value]
    if t.kind == "MAP":
        assert t.element is not None
        return {k: _to_flink(v, t.element) for k, v in value.items()}
    return value


class StructuredOutput:
    """The JSON Schema and the validator of one structured model's answer.

    Built from the model columns, on the client (to send the schema) and in each worker (to
    validate answers); picklable through its columns.

    Example:
        >>> from flink_ml_predict.columns import OutputColumn, Role
        >>> from flink_ml_predict.types import parse_type
        >>> out = StructuredOutput("m", [OutputColumn("label", parse_type("STRING NOT NULL"),
        ...                                           Role.FIELD, "the label")])
        >>> out.parse('{"label": "positive"}')
        ['positive']
    """

    def __init__(self, name: str, columns: Sequence[OutputColumn]) -> None:
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
        self.columns = tuple(columns)
        self.schema = _object({c.name: _schema(c.type, c.description) for c in self.columns})
        self._model = _model("Answer", [(c.name, c.type) for c in self.columns], _Counter())

    def __reduce__(self) -> tuple[Any, ...]:
        return (StructuredOutput, (self.name, self.columns))

    def response_format(self) -> dict[str, Any]:
        """The response_format request field of json-schema mode."""
        return {"type": "json_schema",
                "json_schema": {"name": self.name, "strict": True, "schema": self.schema}}

    def instructions(self) -> str:
        """What json-object mode adds to the system message."""
        return ("Answer with one JSON object, and nothing else, that matches this JSON Schema: "
                + json.dumps(self.schema, ensure_ascii=False, separators=(",", ":")))

    def parse(self, answer: str | None) -> list[Any]:
        """The values of the model columns, in column order, converted for PyFlink.

        Raises:
            InvalidAnswer: not JSON, or not of the schema's shape.
        """
        raw = answer or ""
        fenced = _FENCE.match(raw)
        text = fenced.group(1) if fenced else raw
        try:
            value = self._model.model_validate_json(text)
        except pydantic.ValidationError as exc:
            raise InvalidAnswer(_summarise(exc), raw) from None
        return [_to_flink(getattr(value, f"f{i}"), c.type) for i, c in enumerate(self.columns)]


def _summarise(exc: pydantic.ValidationError, most: int = 3) -> str:
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return f"not valid JSON ({errors[0]['msg'].removeprefix('Invalid JSON: ')})"
    parts = []
    for error in errors[:most]:
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        parts.append(f"{where or 'answer'}: {error['msg']}")
    more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
    return "; ".join(parts) + more
