"""Script splitting and the SQL client's own statements (SET, RESET, STATEMENT SET, EXPLAIN).

A script is split the way Flink's SQL client splits it: on top-level semicolons, never inside
string literals, backquoted identifiers or comments (the tokens of :mod:`.lexer` decide), with
``EXECUTE STATEMENT SET BEGIN ... END`` and ``BEGIN STATEMENT SET; ... END;`` kept whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import SqlSyntaxError
from .lexer import (
    Cursor,
    Token,
    closing_bracket,
    describe,
    leading_words,
    line_at,
    significant,
    tokenize,
)


@dataclass(frozen=True)
class Statement:
    """One statement of a script.

    Attributes:
        text: the statement without its terminating ';' and without leading or trailing
            whitespace and comments (comments between its tokens are kept).
        index: 1-based ordinal among the statements of the script.
        line: 1-based line in the script of the statement's first token.
    """

    text: str
    index: int
    line: int

    def label(self) -> str:
        """A reference for messages, e.g. ``statement 3 (line 12)``."""
        return f"statement {self.index} (line {self.line})"


@dataclass(frozen=True)
class _Chunk:
    """Significant tokens between two top-level semicolons of a script."""

    tokens: list[Token]

    def is_end(self) -> bool:
        """Whether the chunk is the single keyword END."""
        return len(self.tokens) == 1 and self.tokens[0].is_word("END")

    def span(self, script: str) -> str:
        """The script text from the first to the last token of the chunk."""
        return script[self.tokens[0].start : self.tokens[-1].end]


def _chunks(tokens: Iterable[Token]) -> list[_Chunk]:
    """Split tokens at ';' into chunks of significant tokens (empty chunks are dropped)."""
    chunks: list[_Chunk] = []
    current: list[Token] = []
    for token in tokens:
        if token.is_punct(";"):
            if current:
                chunks.append(_Chunk(current))
            current = []
        elif token.significant:
            current.append(token)
    if current:
        chunks.append(_Chunk(current))
    return chunks


def _check_balance(script: str, tokens: Sequence[Token], label: str) -> None:
    """Raise unless the parentheses and brackets in ``tokens`` are balanced."""
    index = 0
    while index < len(tokens):
        token = tokens[index]
        culprit: Token | None = token if token.is_punct(")", "]") else None
        if token.is_punct("(", "["):
            index, culprit = closing_bracket(tokens, index)
        if culprit is not None:
            opening = culprit.is_punct("(", "[")
            problem = "is never closed" if opening else "has no matching opening bracket"
            raise SqlSyntaxError(
                f"{label}: unbalanced parentheses: '{culprit.text}' at line "
                f"{line_at(script, culprit.start)} {problem}"
            )
        index += 1


def split_statements(script: str) -> list[Statement]:
    """Split a SQL script into statements the way the Flink SQL client does.

    Statements end with ';' (the last one may omit it); semicolons inside string literals,
    backquoted identifiers and comments do not count. ``EXECUTE STATEMENT SET BEGIN ... END``
    is one statement; the SQL-client form ``BEGIN STATEMENT SET; ... END;`` is also returned
    as one statement, normalised to ``EXECUTE STATEMENT SET BEGIN <s1>; <s2>; END``.
    Statements made only of comments are dropped.

    Args:
        script: the script text.

    Returns:
        The statements, numbered from 1.

    Raises:
        SqlSyntaxError: unterminated literal/identifier/comment, unbalanced parentheses or
            brackets in a statement, or a statement set without END.
    """
    chunks = _chunks(tokenize(script))
    statements: list[Statement] = []
    i = 0
    while i < len(chunks):
        chunk = chunks[i]
        first = chunk.tokens[0]
        index = len(statements) + 1
        line = line_at(script, first.start)
        label = f"statement {index} (line {line})"
        if leading_words(chunk.tokens, 4) == ["EXECUTE", "STATEMENT", "SET", "BEGIN"]:
            empty_set = len(chunk.tokens) == 5 and chunk.tokens[4].is_word("END")
            end = i if empty_set else _find_set_end(chunks, i, label)
            for member in chunks[i : end + 1]:
                _check_balance(script, member.tokens, label)
            text = script[first.start : chunks[end].tokens[-1].end]
            i = end
        elif leading_words(chunk.tokens, 4) == ["BEGIN", "STATEMENT", "SET"]:
            end = _find_set_end(chunks, i, label)
            inner = chunks[i + 1 : end]
            for member in inner:
                _check_balance(script, member.tokens, label)
            body = "".join(f"\n{member.span(script)};" for member in inner)
            text = f"EXECUTE STATEMENT SET BEGIN{body}\nEND"
            i = end
        else:
            _check_balance(script, chunk.tokens, label)
            text = chunk.span(script)
        statements.append(Statement(text, index, line))
        i += 1
    return statements


def _find_set_end(chunks: Sequence[_Chunk], begin: int, label: str) -> int:
    """Index of the END chunk closing the statement set opened by ``chunks[begin]``."""
    for index in range(begin + 1, len(chunks)):
        if chunks[index].is_end():
            return index
    raise SqlSyntaxError(f"{label}: STATEMENT SET has no END")


_EXPLAIN_DETAILS = ("ESTIMATED_COST", "CHANGELOG_MODE", "PLAN_ADVICE", "JSON_EXECUTION_PLAN")


def _strip_words(words: list[str], *optional: str) -> list[str]:
    """Drop each of the ``optional`` leading words, in order, when present."""
    for word in optional:
        if words[:1] == [word]:
            words = words[1:]
    return words


def statement_kind(text: str) -> str:
    """Classify a statement by its leading keywords (comments ignored).

    Args:
        text: one statement.

    Returns:
        One of ``set``, ``reset``, ``create_model`` (``CREATE [OR REPLACE] [TEMPORARY]
        [SYSTEM] MODEL``), ``drop_model``, ``statement_set`` (``EXECUTE STATEMENT SET``),
        ``explain``, ``query`` (SELECT / WITH / VALUES, possibly parenthesised), ``insert``
        (INSERT INTO / INSERT OVERWRITE) or ``other``.

    Raises:
        SqlSyntaxError: the text cannot be tokenized.
    """
    tokens = significant(tokenize(text))
    words = leading_words(tokens, 8)
    head = words[0] if words else ""
    if head in ("SET", "RESET", "EXPLAIN"):
        return head.lower()
    if head == "CREATE":
        rest = words[1:]
        if rest[:2] == ["OR", "REPLACE"]:
            rest = rest[2:]
        rest = _strip_words(rest, "TEMPORARY", "SYSTEM")
        return "create_model" if rest[:1] == ["MODEL"] else "other"
    if head == "DROP":
        rest = _strip_words(words[1:], "TEMPORARY", "SYSTEM")
        return "drop_model" if rest[:1] == ["MODEL"] else "other"
    if words[:3] == ["EXECUTE", "STATEMENT", "SET"]:
        return "statement_set"
    if head == "INSERT" and words[1:2] in (["INTO"], ["OVERWRITE"]):
        return "insert"
    opening = 0
    while opening < len(tokens) and tokens[opening].is_punct("("):
        opening += 1
    if opening < len(tokens) and tokens[opening].is_word("SELECT", "WITH", "VALUES"):
        return "query"
    return "other"


def _key_operand(text: str, tokens: Sequence[Token], cur: Cursor, what: str) -> str:
    """A SET/RESET key or value: one quoted token, or the raw text of unquoted tokens."""
    if len(tokens) == 1 and tokens[0].kind in ("string", "qident"):
        return tokens[0].value
    for token in tokens:
        if token.kind in ("string", "qident"):
            raise cur.fail(f"unexpected {describe(token)} in the {what}", token)
    raw = text[tokens[0].start : tokens[-1].end]
    if what == "key" and re.search(r"\s", raw):
        raise cur.fail("expected a single key, quoted like 'key'", tokens[0])
    return raw


def parse_set(text: str) -> tuple[str, str] | None:
    """Parse a SQL-client ``SET`` statement.

    Accepts ``SET 'key' = 'value'`` as well as the unquoted forms ``SET key = value``.

    Args:
        text: the statement.

    Returns:
        ``(key, value)``, or None for a bare ``SET`` (which lists the configuration).

    Raises:
        SqlSyntaxError: the statement is not a well-formed SET.
    """
    cur = Cursor(text, "SET")
    cur.expect_word("SET")
    if cur.at_end():
        return None
    rest = cur.tokens[cur.pos :]
    equals = next((k for k, t in enumerate(rest) if t.is_punct("=")), None)
    if equals is None:
        raise cur.fail("expected 'key' = 'value'", rest[0])
    if equals == 0:
        raise cur.fail("expected a key before '='", rest[0])
    if equals == len(rest) - 1:
        raise cur.fail("expected a value after '='", None)
    key = _key_operand(text, rest[:equals], cur, "key")
    value = _key_operand(text, rest[equals + 1 :], cur, "value")
    return key, value


def parse_reset(text: str) -> str | None:
    """Parse a SQL-client ``RESET`` statement.

    Args:
        text: the statement, ``RESET 'key'``, ``RESET key`` or ``RESET``.

    Returns:
        The key, or None for a bare ``RESET`` (which resets every key).

    Raises:
        SqlSyntaxError: the statement is not a well-formed RESET.
    """
    cur = Cursor(text, "RESET")
    cur.expect_word("RESET")
    if cur.at_end():
        return None
    return _key_operand(text, cur.tokens[cur.pos :], cur, "key")


def statement_set_inner(text: str) -> list[str]:
    """The statements of an ``EXECUTE STATEMENT SET BEGIN ... END`` statement.

    Args:
        text: the statement set, as returned by :func:`split_statements`.

    Returns:
        The inner statements in order, each without its ';'.

    Raises:
        SqlSyntaxError: the text is not a statement set, lacks ``; END``, is empty, or holds
            a statement that is not an INSERT.
    """
    cur = Cursor(text, "STATEMENT SET")
    for word in ("EXECUTE", "STATEMENT", "SET", "BEGIN"):
        cur.expect_word(word)
    begin = cur.pos - 1
    last = len(cur.tokens) - 1
    closed = (
        last > begin
        and cur.tokens[last].is_word("END")
        and (last == begin + 1 or cur.tokens[last - 1].is_punct(";"))
    )
    if not closed:
        raise cur.fail("expected '; END' at the end of the statement set", None)
    statements: list[str] = []
    for chunk in _chunks(cur.tokens[begin + 1 : last]):
        inner = chunk.span(text)
        if statement_kind(inner) != "insert":
            raise cur.fail(
                f"only INSERT statements are allowed, found {describe(chunk.tokens[0])}",
                chunk.tokens[0],
            )
        statements.append(inner)
    if not statements:
        raise cur.fail("expected at least one INSERT statement between BEGIN and END", None)
    return statements


def explain_target(text: str) -> tuple[str, str]:
    """Split an EXPLAIN statement into its prefix and the statement it explains.

    Args:
        text: ``EXPLAIN [PLAN FOR | detail[, detail]*] <statement>``, where a detail is one of
            ESTIMATED_COST, CHANGELOG_MODE, PLAN_ADVICE or JSON_EXECUTION_PLAN.

    Returns:
        ``(prefix, inner)`` where ``prefix`` is the text up to the inner statement (so that
        ``prefix + inner`` is the statement) and ``inner`` the explained statement.

    Raises:
        SqlSyntaxError: no statement follows the EXPLAIN keywords.
    """
    cur = Cursor(text, "EXPLAIN")
    cur.expect_word("EXPLAIN")
    if cur.at_word("PLAN") and (nxt := cur.peek(1)) is not None and nxt.is_word("FOR"):
        cur.pos += 2
    else:
        while cur.accept_word(*_EXPLAIN_DETAILS) and cur.accept_punct(","):
            pass
    if cur.at_end():
        raise cur.expected("a statement to explain")
    start = cur.tokens[cur.pos].start
    return text[:start], text[start : cur.tokens[-1].end]


def parse_use(text: str) -> tuple[str | None, str | None] | None:
    """The catalog and database a ``USE`` statement makes current.

    Args:
        text: a statement.

    Returns:
        ``(catalog, None)`` for ``USE CATALOG c`` (the database becomes the catalog's default,
        which only the catalog knows), ``(None, db)`` for ``USE db``, ``(c, db)`` for
        ``USE c.db``; None for ``USE MODULES ...`` and for statements that are not USE.

    Raises:
        SqlSyntaxError: a USE statement that names no catalog or database, or too many parts.
    """
    cur = Cursor(text, "USE")
    if not cur.accept_word("USE") or cur.at_word("MODULES"):
        return None
    if cur.at_word("CATALOG") and cur.peek(1) is not None:
        cur.advance()
        catalog = cur.expect_ident("a catalog name", after="USE CATALOG").value
        cur.expect_end("the catalog name")
        return catalog, None
    parts = cur.dotted_name("a database name", after="USE")
    if len(parts) > 2:
        raise cur.fail("expected [catalog.]database after USE", parts[0])
    cur.expect_end("the database name")
    return (parts[0].value, parts[1].value) if len(parts) == 2 else (None, parts[0].value)
