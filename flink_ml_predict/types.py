"""Flink SQL data types of INPUT and OUTPUT columns, parsed without a JVM.

:func:`parse_type` turns type text as written in ``CREATE MODEL`` (``DECIMAL(10, 2) NOT NULL``,
``ARRAY<STRING>``, ``MAP<STRING, INT>``, ``ROW<name STRING 'the name', score DOUBLE>``) into a
:class:`FlinkType` tree. Everything derived from a column's type starts here: the PyFlink
``DataType`` of the function's arguments and result, the JSON Schema of a structured answer,
the pydantic validator of that answer and the text form of an input value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ModelDefinitionError

# Kinds, by family. Aliases fold into these names.
STRING_KINDS = ("STRING", "VARCHAR", "CHAR")
INTEGER_KINDS = ("TINYINT", "SMALLINT", "INT", "BIGINT")
FLOAT_KINDS = ("FLOAT", "DOUBLE")
SCALAR_KINDS = (*STRING_KINDS, "BOOLEAN", *INTEGER_KINDS, *FLOAT_KINDS, "DECIMAL", "DATE",
                "TIMESTAMP")
# Types Flink has that a model's columns cannot use (named in messages).
UNSUPPORTED_KINDS = ("BYTES", "BINARY", "VARBINARY", "TIME", "TIMESTAMP_LTZ", "INTERVAL",
                     "MULTISET", "RAW", "VARIANT", "NULL", "STRUCTURED", "DESCRIPTOR")
INTEGER_RANGES = {"TINYINT": 2**7, "SMALLINT": 2**15, "INT": 2**31, "BIGINT": 2**63}
_ALIASES = {"INTEGER": "INT", "DEC": "DECIMAL", "NUMERIC": "DECIMAL", "REAL": "FLOAT"}
MAX_STRING_LENGTH = 2147483647
SUPPORTED = ("STRING, VARCHAR(n), CHAR(n), BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, "
             "DECIMAL(p, s), DATE, TIMESTAMP(p), ARRAY<T>, MAP<K, V>, ROW<name T, ...>, NOT NULL")


@dataclass(frozen=True)
class RowField:
    """A field of a ROW type: name, type and the COMMENT given to it."""

    name: str
    type: FlinkType
    description: str | None = None


@dataclass(frozen=True)
class FlinkType:
    """One Flink SQL data type.

    Attributes:
        kind: the type root, e.g. STRING, INT, DECIMAL, ARRAY, MAP, ROW.
        nullable: False when declared NOT NULL.
        params: length (CHAR/VARCHAR), precision and scale (DECIMAL) or precision (TIMESTAMP).
        element: the element type of an ARRAY, the value type of a MAP.
        key: the key type of a MAP.
        fields: the fields of a ROW.
    """

    kind: str
    nullable: bool = True
    params: tuple[int, ...] = ()
    element: FlinkType | None = None
    key: FlinkType | None = None
    fields: tuple[RowField, ...] = ()

    @property
    def is_string(self) -> bool:
        """STRING, VARCHAR(n) or CHAR(n)."""
        return self.kind in STRING_KINDS

    @property
    def is_float_array(self) -> bool:
        """ARRAY<FLOAT>: the value of an embeddings model."""
        return self.kind == "ARRAY" and self.element is not None and self.element.kind == "FLOAT"

    def same_root(self, other: FlinkType) -> bool:
        """Whether two types are the same apart from nullability and string lengths."""
        if self.is_string and other.is_string:
            return True
        if self.kind != other.kind or len(self.fields) != len(other.fields):
            return False
        if self.kind in ("DECIMAL", "TIMESTAMP") and self.params != other.params:
            return False
        pairs = [(self.element, other.element), (self.key, other.key)]
        pairs += [(a.type, b.type) for a, b in zip(self.fields, other.fields, strict=True)]
        return all((a is None and b is None) or (a is not None and b is not None
                                                 and a.same_root(b)) for a, b in pairs)

    def sql(self) -> str:
        """The type as Flink SQL text (canonical spelling)."""
        if self.kind == "ARRAY":
            assert self.element is not None
            text = f"ARRAY<{self.element.sql()}>"
        elif self.kind == "MAP":
            assert self.key is not None and self.element is not None
            text = f"MAP<{self.key.sql()}, {self.element.sql()}>"
        elif self.kind == "ROW":
            parts = []
            for f in self.fields:
                part = f"{quote_identifier(f.name)} {f.type.sql()}"
                if f.description is not None:
                    part += " '" + f.description.replace("'", "''") + "'"
                parts.append(part)
            text = f"ROW<{', '.join(parts)}>"
        elif self.params:
            text = f"{self.kind}({', '.join(str(p) for p in self.params)})"
        else:
            text = self.kind
        return text if self.nullable else text + " NOT NULL"

    def __str__(self) -> str:
        return self.sql()


def quote_identifier(name: str) -> str:
    """A backquoted Flink identifier."""
    return "`" + name.replace("`", "``") + "`"


STRING = FlinkType("STRING")
INT = FlinkType("INT")


class TypeSyntaxError(ValueError):
    """Type text that is not a Flink type this package can use; the message says why."""


_TOKEN = re.compile(r"\s*(?:(?P<word>[A-Za-z_][A-Za-z0-9_$]*)|(?P<num>\d+)"
                    r"|`(?P<quoted>(?:[^`]|``)*)`|'(?P<string>(?:[^']|'')*)'|(?P<punct>[<>(),]))")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TypeSyntaxError(f"unexpected '{text[pos:].strip()[:20]}'")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "quoted":
            value = value.replace("``", "`")
        elif kind == "string":
            value = value.replace("''", "'")
        tokens.append((kind, value))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def word(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].upper() in words:
            self.pos += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token == ("punct", char):
            self.pos += 1
            return True
        return False

    def expect_punct(self, char: str, after: str) -> None:
        if not self.punct(char):
            found = self.peek()
            raise TypeSyntaxError(f"expected '{char}' after {after}, found "
                                  f"{repr(found[1]) if found else 'the end'}")

    def number(self, after: str) -> int:
        token = self.peek()
        if token is None or token[0] != "num":
            raise TypeSyntaxError(f"expected a number after {after}")
        self.pos += 1
        return int(token[1])

    def name(self) -> str:
        token = self.peek()
        if token is None or token[0] not in ("word", "quoted"):
            raise TypeSyntaxError(f"expected a field name, found "
                                  f"{repr(token[1]) if token else 'the end'}")
        self.pos += 1
        return token[1]

    def params(self, kind: str, most: int) -> tuple[int, ...]:
        if not self.punct("("):
            return ()
        values = [self.number(f"{kind}(")]
        while self.punct(","):
            values.append(self.number(f"{kind}(..., "))
        self.expect_punct(")", f"{kind}(...")
        if len(values) > most:
            raise TypeSyntaxError(f"{kind} takes at most {most} parameter(s)")
        return tuple(values)

    def parse(self) -> FlinkType:
        token = self.peek()
        if token is None or token[0] != "word":
            found = repr(token[1]) if token else "nothing"
            raise TypeSyntaxError(f"expected a type, found {found}")
        self.pos += 1
        kind = _ALIASES.get(token[1].upper(), token[1].upper())
        result = self._body(kind)
        while self.word("ARRAY"):  # Flink's postfix form: INT ARRAY
            result = FlinkType("ARRAY", element=result)
        if self.word("NOT"):
            if not self.word("NULL"):
                raise TypeSyntaxError("expected NULL after NOT")
            return _with_nullable(result, False)
        self.word("NULL")
        return result

    def _body(self, kind: str) -> FlinkType:
        if kind in ("STRING", "BOOLEAN", "TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DATE"):
            return FlinkType(kind)
        if kind == "DOUBLE":
            self.word("PRECISION")
            return FlinkType("DOUBLE")
        if kind in ("VARCHAR", "CHAR"):
            params = self.params(kind, 1)
            if kind == "VARCHAR" and (not params or params[0] == MAX_STRING_LENGTH):
                return FlinkType("STRING")
            return FlinkType(kind, params=params or (1,))
        if kind == "DECIMAL":
            params = self.params(kind, 2)
            precision, scale = (params + (10, 0)[len(params):])[:2]
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise TypeSyntaxError(f"DECIMAL({precision}, {scale}) needs 1 <= precision <= 38 "
                                      "and 0 <= scale <= precision")
            return FlinkType("DECIMAL", params=(precision, scale))
        if kind == "TIMESTAMP":
            params = self.params(kind, 1) or (6,)
            if self.word("WITH"):
                raise TypeSyntaxError("TIMESTAMP WITH (LOCAL) TIME ZONE is not supported; use "
                                      "TIMESTAMP(p) or STRING")
            if self.word("WITHOUT"):
                if not (self.word("TIME") and self.word("ZONE")):
                    raise TypeSyntaxError("expected TIME ZONE after WITHOUT")
            if not 0 <= params[0] <= 9:
                raise TypeSyntaxError("TIMESTAMP precision must be between 0 and 9")
            return FlinkType("TIMESTAMP", params=params)
        if kind == "ARRAY":
            self.expect_punct("<", "ARRAY")
            element = self.parse()
            self.expect_punct(">", "ARRAY<...")
            return FlinkType("ARRAY", element=element)
        if kind == "MAP":
            self.expect_punct("<", "MAP")
            key = self.parse()
            self.expect_punct(",", "MAP<key type")
            value = self.parse()
            self.expect_punct(">", "MAP<..., ...")
            return FlinkType("MAP", key=key, element=value)
        if kind == "ROW":
            return self._row()
        if kind in UNSUPPORTED_KINDS:
            raise TypeSyntaxError(f"type {kind} is not supported here")
        raise TypeSyntaxError(f"unknown type {kind}")

    def _row(self) -> FlinkType:
        close = ">" if self.punct("<") else ")" if self.punct("(") else None
        if close is None:
            raise TypeSyntaxError("expected '<' after ROW")
        fields: list[RowField] = []
        names: set[str] = set()
        if self.punct(close):
            raise TypeSyntaxError("ROW needs at least one field")
        while True:
            name = self.name()
            if name in names:
                raise TypeSyntaxError(f"duplicate ROW field `{name}`")
            names.add(name)
            field_type = self.parse()
            description = None
            token = self.peek()
            if token is not None and token[0] == "string":  # Flink: ROW<name type 'description'>
                self.pos += 1
                description = token[1]
            elif self.word("COMMENT"):
                raise TypeSyntaxError(f"field `{name}`: Flink writes a ROW field's description as "
                                      f"a string after its type, without COMMENT: ROW<{name} "
                                      f"{field_type.sql()} '...'>")
            fields.append(RowField(name, field_type, description))
            if self.punct(close):
                return FlinkType("ROW", fields=tuple(fields))
            self.expect_punct(",", f"field `{name}`")


def _with_nullable(t: FlinkType, nullable: bool) -> FlinkType:
    return FlinkType(t.kind, nullable, t.params, t.element, t.key, t.fields)


def parse_type(text: str) -> FlinkType:
    """Parses Flink SQL type text.

    Raises:
        TypeSyntaxError: the text is not a type this package supports; the message says why.

    Example:
        >>> parse_type("MAP<STRING, ARRAY<INT NOT NULL>>").sql()
        'MAP<STRING, ARRAY<INT NOT NULL>>'
    """
    parser = _Parser(text)
    result = parser.parse()
    rest = parser.peek()
    if rest is not None:
        raise TypeSyntaxError(f"unexpected '{rest[1]}' after the type")
    return result


def parse_column_type(text: str, column: str, where: str) -> FlinkType:
    """parse_type for a declared column, with a ModelDefinitionError naming the column."""
    try:
        return parse_type(text)
    except TypeSyntaxError as exc:
        raise ModelDefinitionError(f"{where}: column '{column}' has type {text}: {exc}; "
                                   f"supported: {SUPPORTED}") from None


def walk(t: FlinkType) -> list[FlinkType]:
    """The type and every type nested in it, outermost first."""
    nested = [t]
    for child in (t.key, t.element, *(f.type for f in t.fields)):
        if child is not None:
            nested += walk(child)
    return nested
