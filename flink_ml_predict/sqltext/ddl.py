"""Model DDL: ``CREATE MODEL`` and ``DROP MODEL`` parsed into values, and rendered back.

Column types are kept as the text that was written (whitespace normalised), ``NOT NULL``
included; a column's ``COMMENT '...'`` is kept apart from its type. Understanding the type text
is :mod:`flink_ml_predict.model`'s business, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .lexer import Cursor, Token, quote_identifier, quote_string
from .with_clause import option_entries, options_dict


@dataclass(frozen=True)
class ColumnDef:
    """One column of a model's INPUT or OUTPUT schema.

    Attributes:
        name: the column name, unquoted.
        type: the Flink SQL type as written, whitespace normalised (``MAP<STRING, INT>``).
        comment: the column comment, if any.
    """

    name: str
    type: str
    comment: str | None = None


@dataclass(frozen=True)
class CreateModel:
    """A parsed ``CREATE MODEL`` statement.

    Attributes:
        name_parts: the unquoted parts of the model name (1 to 3).
        temporary: whether TEMPORARY was given.
        if_not_exists: whether IF NOT EXISTS was given.
        inputs: the INPUT columns (empty when the clause is absent).
        outputs: the OUTPUT columns (empty when the clause is absent).
        options: the WITH options in written order, unescaped.
        comment: the model comment, if any.
    """

    name_parts: tuple[str, ...]
    temporary: bool
    if_not_exists: bool
    inputs: tuple[ColumnDef, ...]
    outputs: tuple[ColumnDef, ...]
    options: dict[str, str] = field(default_factory=dict)
    comment: str | None = None

    @property
    def name(self) -> str:
        """The name parts joined with '.'."""
        return ".".join(self.name_parts)

    def render(self, options: Mapping[str, str] | None = None) -> str:
        """Render the statement as Flink SQL.

        Args:
            options: WITH options to use instead of :attr:`options` (e.g. with the api-key
                masked).

        Returns:
            A CREATE MODEL statement that Flink (and :func:`parse_create_model`) accepts.
        """
        head = ["CREATE"]
        if self.temporary:
            head.append("TEMPORARY")
        head.append("MODEL")
        if self.if_not_exists:
            head.append("IF NOT EXISTS")
        head.append(".".join(quote_identifier(part) for part in self.name_parts))
        lines = [" ".join(head)]
        for clause, columns in (("INPUT", self.inputs), ("OUTPUT", self.outputs)):
            if columns:
                lines.append(f"{clause} ({', '.join(_render_column(c) for c in columns)})")
        if self.comment is not None:
            lines.append(f"COMMENT {quote_string(self.comment)}")
        chosen = self.options if options is None else options
        entries = ",\n".join(
            f"  {quote_string(k)} = {quote_string(v)}" for k, v in chosen.items()
        )
        lines.append(f"WITH (\n{entries}\n)" if entries else "WITH ()")
        return "\n".join(lines)


@dataclass(frozen=True)
class DropModel:
    """A parsed ``DROP [TEMPORARY] MODEL [IF EXISTS] name`` statement."""

    name_parts: tuple[str, ...]
    if_exists: bool
    temporary: bool

    @property
    def name(self) -> str:
        """The name parts joined with '.'."""
        return ".".join(self.name_parts)


def _render_column(column: ColumnDef) -> str:
    """Render one column definition of an INPUT/OUTPUT clause."""
    text = f"{quote_identifier(column.name)} {column.type}"
    if column.comment is not None:
        text += f" COMMENT {quote_string(column.comment)}"
    return text


def _model_head(cur: Cursor, verb: str, *condition: str) -> tuple[bool, bool, tuple[str, ...]]:
    """Parse ``[TEMPORARY] MODEL [IF <condition>] name`` after ``verb``.

    Returns ``(temporary, condition given, name parts)``; SYSTEM models are refused (Flink has
    none).
    """
    temporary = cur.accept_word("TEMPORARY") is not None
    if cur.at_word("SYSTEM"):
        raise cur.fail("SYSTEM models are not supported")
    cur.expect_word("MODEL", after=f"{verb} [TEMPORARY]")
    conditional = cur.accept_word("IF") is not None
    if conditional:
        for k, word in enumerate(condition):
            cur.expect_word(word, after=" ".join(("IF", *condition[:k])))
    clause = " ".join(("", "IF", *condition)) if conditional else ""
    return temporary, conditional, cur.model_name(f"{verb} MODEL{clause}")


_NO_SPACE_BEFORE = frozenset({",", ">", ")", "(", "<", ".", "]", "["})
_NO_SPACE_AFTER = frozenset({"<", "(", ".", "["})
_TYPE_CLOSERS = {"(": ")", "[": "]", "<": ">"}


def _join_type(tokens: Sequence[Token]) -> str:
    """Join the tokens of a type with normalised spacing (``MAP<STRING, ARRAY<INT>>``)."""
    pieces: list[str] = []
    for k, token in enumerate(tokens):
        if k and not (
            (token.kind == "punct" and token.text in _NO_SPACE_BEFORE)
            or (tokens[k - 1].kind == "punct" and tokens[k - 1].text in _NO_SPACE_AFTER)
        ):
            pieces.append(" ")
        pieces.append(token.text)
    return "".join(pieces)


def _column_type(cur: Cursor, column: str) -> str:
    """Parse a column type up to the next top-level ',', ')' or COMMENT; brackets must match."""
    tokens: list[Token] = []
    open_brackets: list[Token] = []
    while (token := cur.peek()) is not None:
        if not open_brackets and (token.is_punct(",", ")") or token.is_word("COMMENT")):
            break
        if token.is_punct(*_TYPE_CLOSERS):
            open_brackets.append(token)
        elif token.is_punct(*_TYPE_CLOSERS.values()):
            if not open_brackets or _TYPE_CLOSERS[open_brackets[-1].text] != token.text:
                opening = f"'{open_brackets[-1].text}'" if open_brackets else "nothing"
                raise cur.fail(f"'{token.text}' closes {opening} in the type of column `{column}`")
            open_brackets.pop()
        tokens.append(cur.advance())
    if not tokens:
        raise cur.expected(f"a type for column `{column}`")
    if open_brackets:
        raise cur.fail(f"'{open_brackets[-1].text}' in the type of column `{column}` is never "
                       "closed", open_brackets[-1])
    return _join_type(tokens)


def _column_list(cur: Cursor, clause: str) -> tuple[ColumnDef, ...]:
    """Parse ``( name type [COMMENT '...'], ... )`` after INPUT or OUTPUT."""
    cur.expect_punct("(", after=clause)
    columns: list[ColumnDef] = []
    seen: set[str] = set()
    after = f"{clause} ("
    while True:
        name_token = cur.expect_ident("a column name", after)
        name = name_token.value
        if name in seen:
            raise cur.fail(f"duplicate column `{name}` in {clause}", name_token)
        seen.add(name)
        column_type = _column_type(cur, name)
        comment = None
        if cur.accept_word("COMMENT"):
            comment = cur.expect_string("a string literal", f"COMMENT of column `{name}`").value
        columns.append(ColumnDef(name, column_type, comment))
        if cur.accept_punct(")"):
            return tuple(columns)
        if not cur.accept_punct(","):
            raise cur.expected("',' or ')'", f"column `{name}` in {clause}")
        after = "','"


def parse_create_model(text: str) -> CreateModel:
    """Parse a Flink 2.x ``CREATE MODEL`` statement.

    Syntax: ``CREATE [TEMPORARY] MODEL [IF NOT EXISTS] [catalog.][db.]name
    [INPUT (col type [COMMENT '...'], ...)] [OUTPUT (...)] [COMMENT '...']
    WITH ('key' = 'value', ...)``.

    Args:
        text: the statement.

    Returns:
        The parsed statement.

    Raises:
        SqlSyntaxError: the statement is malformed (the message says what was expected where),
            repeats a column within INPUT or OUTPUT, repeats an option key or lacks WITH.
    """
    cur = Cursor(text, "CREATE MODEL")
    cur.expect_word("CREATE")
    if cur.at_word("OR"):
        raise cur.fail(
            "CREATE OR REPLACE MODEL is not supported; use DROP MODEL IF EXISTS, then CREATE MODEL"
        )
    temporary, if_not_exists, name_parts = _model_head(cur, "CREATE", "NOT", "EXISTS")
    after = "the model name"
    inputs: tuple[ColumnDef, ...] = ()
    outputs: tuple[ColumnDef, ...] = ()
    comment: str | None = None
    if cur.accept_word("INPUT"):
        inputs = _column_list(cur, "INPUT")
        after = "INPUT (...)"
    if cur.accept_word("OUTPUT"):
        outputs = _column_list(cur, "OUTPUT")
        after = "OUTPUT (...)"
    if cur.accept_word("COMMENT"):
        comment = cur.expect_string("a string literal", after="COMMENT").value
        after = "COMMENT '...'"
    if not cur.accept_word("WITH"):
        raise cur.expected("WITH (...)", after)
    entries, _ = option_entries(cur, "WITH")
    options = options_dict(cur, entries)
    cur.expect_end("WITH (...)")
    return CreateModel(
        name_parts=name_parts,
        temporary=temporary,
        if_not_exists=if_not_exists,
        inputs=inputs,
        outputs=outputs,
        options=options,
        comment=comment,
    )


def parse_drop_model(text: str) -> DropModel:
    """Parse ``DROP [TEMPORARY] MODEL [IF EXISTS] [catalog.][db.]name``.

    Args:
        text: the statement.

    Returns:
        The parsed statement.

    Raises:
        SqlSyntaxError: the statement is malformed.
    """
    cur = Cursor(text, "DROP MODEL")
    cur.expect_word("DROP")
    temporary, if_exists, name_parts = _model_head(cur, "DROP", "EXISTS")
    cur.expect_end("the model name")
    return DropModel(name_parts=name_parts, if_exists=if_exists, temporary=temporary)
