"""The user message of a row: its INPUT values, through a prompt template or in a fixed form.

* With ``'prompt-template'``, ``{column}`` is replaced by that INPUT column's value; ``{{`` and
  ``}}`` are literal braces; ``\\n``, ``\\t`` and ``\\\\`` in the option value are a new line, a
  tab and a backslash (SQL string literals have no escapes of their own).
* Without a template, one INPUT column is sent as its value's text, several as one JSON object
  ``{"column": value, ...}`` in INPUT order.

Values are formatted by type: strings as they are; BOOLEAN as ``true``/``false``; numbers as
written by Python (``5``, ``4.5``, DECIMAL with its scale: ``12.50``); DATE as ``2024-05-01``;
TIMESTAMP as ``2024-05-01 12:30:00``; ARRAY, MAP and ROW as JSON (DECIMAL as a JSON number). A
null value is the empty string in a template and ``null`` in the JSON form. A row whose INPUT
values are all null is skipped (no request, no output row), as Flink's own ML_PREDICT skips a
null input.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .columns import InputColumn
from .types import FlinkType

_ESCAPES = re.compile(r"\\(n|t|\\)")
_ESCAPED = {"n": "\n", "t": "\t", "\\": "\\"}


def _json_ready(value: Any, t: FlinkType) -> Any:
    """A value of Flink type t as plain JSON data (ROW fields by name)."""
    if value is None:
        return None
    if t.kind == "ROW":
        return {f.name: _json_ready(value[i], f.type) for i, f in enumerate(t.fields)}
    if t.kind == "ARRAY":
        assert t.element is not None
        return [_json_ready(v, t.element) for v in value]
    if t.kind == "MAP":
        assert t.element is not None and t.key is not None
        return {str(_json_ready(k, t.key)): _json_ready(v, t.element) for k, v in value.items()}
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def format_value(value: Any, t: FlinkType) -> str:
    """The text of one INPUT value in a prompt (null: the empty string)."""
    if value is None:
        return ""
    if t.is_string:
        return str(value)
    if t.kind == "BOOLEAN":
        return "true" if value else "false"
    if t.kind in ("ARRAY", "MAP", "ROW"):
        return json.dumps(_json_ready(value, t), ensure_ascii=False)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed prompt template: literal text and INPUT column positions, alternating.

    Attributes:
        text: the template as given.
        parts: literal strings (str) and column indexes (int) in order.
    """

    text: str
    parts: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str, columns: Sequence[InputColumn]) -> PromptTemplate:
        """Parses a template against the INPUT columns.

        Raises:
            ValueError: an unknown placeholder (the message lists the INPUT columns), a format
                spec or conversion, or an unmatched brace.
        """
        names = [c.name for c in columns]
        unescaped = _ESCAPES.sub(lambda m: _ESCAPED[m.group(1)], text)
        parts: list[str | int] = []
        try:
            parsed = list(string.Formatter().parse(unescaped))
        except ValueError as exc:
            raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
        for literal, field, spec, conversion in parsed:
            if literal:
                parts.append(literal)
            if field is None:
                continue
            if field == "" or spec or conversion:
                shown = "{" + field + ("!" + conversion if conversion else "") + (
                    ":" + spec if spec else "") + "}"
                raise ValueError(f"placeholder {shown} must be an INPUT column name such as "
                                 f"{{{names[0]}}}; INPUT columns: {', '.join(names)}")
            if field not in names:
                raise ValueError(f"placeholder {{{field}}} is not an INPUT column; INPUT columns: "
                                 f"{', '.join(names)}")
            parts.append(names.index(field))
        return cls(text, tuple(parts))

    def render(self, values: Sequence[Any], columns: Sequence[InputColumn]) -> str:
        """The user message for one row."""
        return "".join(part if isinstance(part, str) else
                       format_value(values[part], columns[part].type) for part in self.parts)


@dataclass(frozen=True)
class PromptBuilder:
    """Builds the user message of a row from its INPUT values."""

    columns: tuple[InputColumn, ...]
    template: PromptTemplate | None = None

    def build(self, values: Sequence[Any]) -> str | None:
        """The user message, or None when every INPUT value is null (the row is skipped)."""
        if all(v is None for v in values):
            return None
        if self.template is not None:
            return self.template.render(values, self.columns)
        if len(self.columns) == 1:
            return format_value(values[0], self.columns[0].type)
        pairs = zip(self.columns, values, strict=True)
        return json.dumps({c.name: _json_ready(v, c.type) for c, v in pairs}, ensure_ascii=False)
