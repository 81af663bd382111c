"""The SQL text layer: lexing, script splitting and parsing of what Flink itself cannot run.

One tokenizer (:func:`tokenize`) drives everything here. Script splitting works on its tokens,
so semicolons inside string literals, backquoted identifiers and comments never split a
statement. The statement parsers (CREATE MODEL, DROP MODEL, SET, RESET, EXPLAIN, STATEMENT SET,
WITH options, ML_PREDICT calls) walk the *significant* tokens (everything but whitespace and
comments) with a small recursive-descent cursor, and report problems with
:class:`~flink_ml_predict.errors.SqlSyntaxError` (or :class:`PredictCallError` for ML_PREDICT)
naming what was expected and the line where it was not found. Positions (``start``/``end``)
are character offsets into the text that was given.

Nothing in this module imports Flink or does I/O. No error message ever quotes the content of
a string literal, so an api-key written in a script never reaches a log through this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flink_ml_predict.errors import (
    ConfigurationError,
    PredictCallError,
    SqlSyntaxError,
)

__all__ = [
    "ColumnDef",
    "CreateModel",
    "DropModel",
    "PredictCall",
    "Statement",
    "Token",
    "explain_target",
    "find_predict_calls",
    "parse_create_model",
    "parse_drop_model",
    "parse_reset",
    "parse_set",
    "remove_with_options",
    "split_statements",
    "statement_kind",
    "statement_set_inner",
    "substitute_env",
    "tokenize",
    "with_options",
]

# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>(?:[EeXxNn]|[Uu]&)?'[^']*(?:''[^']*)*')
  | (?P<qident>`[^`]*(?:``[^`]*)*`)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[Ee][+-]?\d+)?)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<punct>=>|<>|<=|>=|!=|\|\||::|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_STRING_PREFIX_RE = re.compile(r"(?:[EeXxNn]|[Uu]&)?'")


@dataclass(frozen=True)
class Token:
    """One lexical token of Flink SQL text.

    Attributes:
        kind: ``word`` (unquoted identifier or keyword), ``qident`` (backquoted identifier),
            ``string`` (single-quoted literal, optionally prefixed by E, X, N or U&),
            ``number``, ``punct`` (one character, or one of ``=> <> <= >= != || ::``),
            ``ws`` or ``comment`` (``-- ...`` to end of line, or ``/* ... */``).
        text: the raw text of the token.
        start: offset of the first character in the tokenized text.
        end: offset just past the last character.
    """

    kind: str
    text: str
    start: int
    end: int

    @property
    def value(self) -> str:
        """The unescaped content of a string or backquoted identifier, else the raw text."""
        if self.kind == "string":
            body = self.text[self.text.index("'") + 1 : -1]
            return body.replace("''", "'")
        if self.kind == "qident":
            return self.text[1:-1].replace("``", "`")
        return self.text

    @property
    def significant(self) -> bool:
        """False for whitespace and comments."""
        return self.kind not in ("ws", "comment")

    def is_word(self, *words: str) -> bool:
        """Whether this is an unquoted word equal (case-insensitively) to one of ``words``."""
        return self.kind == "word" and self.text.upper() in words

    def is_punct(self, *chars: str) -> bool:
        """Whether this is one of the punctuation tokens ``chars``."""
        return self.kind == "punct" and self.text in chars


def _line_at(text: str, pos: int) -> int:
    """1-based line number of offset ``pos`` in ``text``."""
    return text.count("\n", 0, pos) + 1


def tokenize(text: str) -> list[Token]:
    """Split Flink SQL text into tokens, whitespace and comments included.

    Concatenating the ``text`` of the returned tokens gives back ``text`` exactly.

    Args:
        text: SQL text (a script or a single statement).

    Returns:
        The tokens in order.

    Raises:
        SqlSyntaxError: an unterminated string literal, backquoted identifier or block comment.
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text.startswith("/*", pos) and text.find("*/", pos + 2) < 0:
            line = _line_at(text, pos)
            raise SqlSyntaxError(f"unterminated block comment starting at line {line}")
        match = _TOKEN_RE.match(text, pos)
        assert match is not None and match.lastgroup is not None  # punct matches any char
        kind = match.lastgroup
        if kind == "punct" or kind == "word":
            # A quote that the string/qident branches could not close is unterminated.
            if text[pos] == "`":
                raise SqlSyntaxError(
                    f"unterminated backquoted identifier starting at line {_line_at(text, pos)}"
                )
            if _STRING_PREFIX_RE.match(text, pos):
                raise SqlSyntaxError(
                    f"unterminated string literal starting at line {_line_at(text, pos)}"
                )
        tokens.append(Token(kind, match.group(), pos, match.end()))
        pos = match.end()
    return tokens


def _significant(tokens: Iterable[Token]) -> list[Token]:
    """The tokens that are neither whitespace nor comments."""
    return [t for t in tokens if t.significant]


def _leading_words(tokens: Sequence[Token], count: int) -> list[str]:
    """The first ``count`` significant tokens: words upper-cased, other tokens as written."""
    return [t.text.upper() if t.kind == "word" else t.text for t in tokens[:count]]


def _quote_ident(name: str) -> str:
    """Backquote an identifier, doubling backquotes inside it."""
    return "`" + name.replace("`", "``") + "`"


def _quote_string(value: str) -> str:
    """Single-quote a string literal, doubling quotes inside it."""
    return "'" + value.replace("'", "''") + "'"


def _describe(token: Token | None) -> str:
    """Describe a token for an error message without ever quoting a literal's content."""
    if token is None:
        return "end of statement"
    if token.kind == "string":
        return "string literal"
    if token.kind == "number":
        return f"number {token.text}"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return f"'{text}'"


# --------------------------------------------------------------------------------------------
# Cursor over significant tokens
# --------------------------------------------------------------------------------------------


class _Cursor:
    """A recursive-descent cursor over the significant tokens of one piece of SQL text."""

    def __init__(
        self,
        text: str,
        context: str,
        error: type[ConfigurationError] = SqlSyntaxError,
        tokens: Sequence[Token] | None = None,
    ) -> None:
        self.text = text
        self.context = context
        self.error_class = error
        self.tokens = list(tokens) if tokens is not None else _significant(tokenize(text))
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        """The token ``offset`` places ahead, or None past the end."""
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_end(self) -> bool:
        """Whether every token has been consumed."""
        return self.pos >= len(self.tokens)

    def advance(self) -> Token:
        """Consume and return the next token (which must exist)."""
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at_word(self, *words: str) -> bool:
        """Whether the next token is one of the (upper-case) keywords ``words``."""
        token = self.peek()
        return token is not None and token.is_word(*words)

    def at_punct(self, *chars: str) -> bool:
        """Whether the next token is one of the punctuation tokens ``chars``."""
        token = self.peek()
        return token is not None and token.is_punct(*chars)

    def accept_word(self, *words: str) -> Token | None:
        """Consume the next token if it is one of ``words``."""
        return self.advance() if self.at_word(*words) else None

    def accept_punct(self, *chars: str) -> Token | None:
        """Consume the next token if it is one of ``chars``."""
        return self.advance() if self.at_punct(*chars) else None

    def fail(self, message: str, token: Token | None = None) -> ConfigurationError:
        """Build an error about ``token`` (default: the next token) located by line."""
        token = token if token is not None else self.peek()
        where = len(self.text) if token is None else token.start
        return self.error_class(f"{self.context}: {message} at line {_line_at(self.text, where)}")

    def expected(self, what: str, after: str | None = None) -> ConfigurationError:
        """Build an 'expected X [after Y], found Z' error about the next token."""
        place = f" after {after}" if after else ""
        return self.fail(f"expected {what}{place}, found {_describe(self.peek())}")

    def expect_word(self, word: str, after: str | None = None) -> Token:
        """Consume the keyword ``word`` or fail."""
        token = self.accept_word(word)
        if token is None:
            raise self.expected(word, after)
        return token

    def expect_punct(self, char: str, after: str | None = None) -> Token:
        """Consume the punctuation ``char`` or fail."""
        token = self.accept_punct(char)
        if token is None:
            raise self.expected(f"'{char}'", after)
        return token

    def expect_string(self, what: str, after: str | None = None) -> Token:
        """Consume a string literal or fail."""
        token = self.peek()
        if token is None or token.kind != "string":
            raise self.expected(what, after)
        return self.advance()

    def expect_ident(self, what: str, after: str | None = None) -> Token:
        """Consume an identifier (unquoted word or backquoted) or fail."""
        token = self.peek()
        if token is None or token.kind not in ("word", "qident"):
            raise self.expected(what, after)
        return self.advance()

    def dotted_name(self, what: str, after: str | None = None) -> list[Token]:
        """Consume ``part[.part]*`` and return the part tokens."""
        parts = [self.expect_ident(what, after)]
        while self.accept_punct("."):
            parts.append(self.expect_ident(f"an identifier after '.' in {what}"))
        return parts

    def expect_end(self, after: str) -> None:
        """Fail unless every token has been consumed."""
        if not self.at_end():
            raise self.fail(f"unexpected {_describe(self.peek())} after {after}")

    def matching_close(self, open_index: int) -> int:
        """Index of the token closing the bracket at ``open_index``, or -1 if none."""
        return _closing_bracket(self.tokens, open_index)[0]


_CLOSERS = {"(": ")", "[": "]"}


def _closing_bracket(tokens: Sequence[Token], open_index: int) -> tuple[int, Token | None]:
    """``(index, None)`` of the bracket closing ``tokens[open_index]``, or ``(-1, culprit)``."""
    stack: list[Token] = []
    for index in range(open_index, len(tokens)):
        token = tokens[index]
        if token.is_punct("(", "["):
            stack.append(token)
        elif token.is_punct(")", "]"):
            if not stack or _CLOSERS[stack[-1].text] != token.text:
                return -1, token
            stack.pop()
            if not stack:
                return index, None
    return -1, stack[-1] if stack else None


# --------------------------------------------------------------------------------------------
# Script splitting
# --------------------------------------------------------------------------------------------


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
            index, culprit = _closing_bracket(tokens, index)
        if culprit is not None:
            opening = culprit.is_punct("(", "[")
            problem = "is never closed" if opening else "has no matching opening bracket"
            raise SqlSyntaxError(
                f"{label}: unbalanced parentheses: '{culprit.text}' at line "
                f"{_line_at(script, culprit.start)} {problem}"
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
        line = _line_at(script, first.start)
        label = f"statement {index} (line {line})"
        if _leading_words(chunk.tokens, 4) == ["EXECUTE", "STATEMENT", "SET", "BEGIN"]:
            empty_set = len(chunk.tokens) == 5 and chunk.tokens[4].is_word("END")
            end = i if empty_set else _find_set_end(chunks, i, label)
            for member in chunks[i : end + 1]:
                _check_balance(script, member.tokens, label)
            text = script[first.start : chunks[end].tokens[-1].end]
            i = end
        elif _leading_words(chunk.tokens, 4) == ["BEGIN", "STATEMENT", "SET"]:
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


# --------------------------------------------------------------------------------------------
# Statement classification and SQL-client statements
# --------------------------------------------------------------------------------------------

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
    tokens = _significant(tokenize(text))
    words = _leading_words(tokens, 8)
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


def _key_operand(text: str, tokens: Sequence[Token], cur: _Cursor, what: str) -> str:
    """A SET/RESET key or value: one quoted token, or the raw text of unquoted tokens."""
    if len(tokens) == 1 and tokens[0].kind in ("string", "qident"):
        return tokens[0].value
    for token in tokens:
        if token.kind in ("string", "qident"):
            raise cur.fail(f"unexpected {_describe(token)} in the {what}", token)
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
    cur = _Cursor(text, "SET")
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
    cur = _Cursor(text, "RESET")
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
    cur = _Cursor(text, "STATEMENT SET")
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
                f"only INSERT statements are allowed, found {_describe(chunk.tokens[0])}",
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
    cur = _Cursor(text, "EXPLAIN")
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


# --------------------------------------------------------------------------------------------
# CREATE MODEL / DROP MODEL
# --------------------------------------------------------------------------------------------


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
        head.append(".".join(_quote_ident(part) for part in self.name_parts))
        lines = [" ".join(head)]
        for clause, columns in (("INPUT", self.inputs), ("OUTPUT", self.outputs)):
            if columns:
                lines.append(f"{clause} ({', '.join(_render_column(c) for c in columns)})")
        if self.comment is not None:
            lines.append(f"COMMENT {_quote_string(self.comment)}")
        chosen = self.options if options is None else options
        entries = ",\n".join(
            f"  {_quote_string(k)} = {_quote_string(v)}" for k, v in chosen.items()
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
    text = f"{_quote_ident(column.name)} {column.type}"
    if column.comment is not None:
        text += f" COMMENT {_quote_string(column.comment)}"
    return text


def _model_name(cur: _Cursor, after: str) -> tuple[str, ...]:
    """Parse ``[catalog.][db.]name`` and return its unquoted parts."""
    parts = cur.dotted_name("a model name", after)
    if len(parts) > 3:
        raise cur.fail("a model name has at most 3 parts (catalog.database.model)", parts[0])
    return tuple(p.value for p in parts)


def _reject_system(cur: _Cursor) -> None:
    """Fail on the SYSTEM keyword, which Flink does not support for models."""
    if cur.at_word("SYSTEM"):
        raise cur.fail("SYSTEM models are not supported")


_NO_SPACE_BEFORE = frozenset({",", ">", ")", "(", "<", ".", "]", "["})
_NO_SPACE_AFTER = frozenset({"<", "(", ".", "["})


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


def _column_type(cur: _Cursor, column: str) -> str:
    """Parse a column type up to the next top-level ',', ')' or COMMENT."""
    tokens: list[Token] = []
    depth = 0
    while (token := cur.peek()) is not None:
        if depth == 0 and (token.is_punct(",", ")") or token.is_word("COMMENT")):
            break
        if token.is_punct("(", "[", "<"):
            depth += 1
        elif token.is_punct(")", "]", ">"):
            depth -= 1
        tokens.append(cur.advance())
    if not tokens:
        raise cur.expected(f"a type for column `{column}`")
    return _join_type(tokens)


def _column_list(cur: _Cursor, clause: str) -> tuple[ColumnDef, ...]:
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


def _option_entries(cur: _Cursor, clause: str) -> tuple[list[tuple[Token, Token]], list[Token]]:
    """Parse ``( 'k' = 'v', ... )`` and return its (key, value) tokens and its commas."""
    cur.expect_punct("(", after=clause)
    entries: list[tuple[Token, Token]] = []
    commas: list[Token] = []
    if cur.accept_punct(")"):
        return entries, commas
    after = f"{clause} ("
    while True:
        key = cur.expect_string("an option key (a string literal)", after)
        cur.expect_punct("=", after=f"option key '{key.value}'")
        value = cur.expect_string(
            "a string literal", after=f"'=' of option '{key.value}'"
        )
        entries.append((key, value))
        if cur.accept_punct(")"):
            return entries, commas
        comma = cur.accept_punct(",")
        if comma is None:
            raise cur.expected("',' or ')'", f"option '{key.value}'")
        commas.append(comma)
        after = "','"


def _options_dict(cur: _Cursor, entries: Sequence[tuple[Token, Token]]) -> dict[str, str]:
    """The options as a dict in written order; a repeated key is an error."""
    options: dict[str, str] = {}
    for key, value in entries:
        if key.value in options:
            raise cur.fail(f"duplicate option '{key.value}'", key)
        options[key.value] = value.value
    return options


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
    cur = _Cursor(text, "CREATE MODEL")
    cur.expect_word("CREATE")
    if cur.at_word("OR"):
        raise cur.fail(
            "CREATE OR REPLACE MODEL is not supported; use DROP MODEL IF EXISTS, then CREATE MODEL"
        )
    temporary = cur.accept_word("TEMPORARY") is not None
    _reject_system(cur)
    cur.expect_word("MODEL", after="CREATE [TEMPORARY]")
    if_not_exists = False
    if cur.accept_word("IF"):
        cur.expect_word("NOT", after="IF")
        cur.expect_word("EXISTS", after="IF NOT")
        if_not_exists = True
    name_parts = _model_name(cur, "CREATE MODEL" + (" IF NOT EXISTS" if if_not_exists else ""))
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
    entries, _ = _option_entries(cur, "WITH")
    options = _options_dict(cur, entries)
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
    cur = _Cursor(text, "DROP MODEL")
    cur.expect_word("DROP")
    temporary = cur.accept_word("TEMPORARY") is not None
    _reject_system(cur)
    cur.expect_word("MODEL", after="DROP [TEMPORARY]")
    if_exists = False
    if cur.accept_word("IF"):
        cur.expect_word("EXISTS", after="IF")
        if_exists = True
    name_parts = _model_name(cur, "DROP MODEL" + (" IF EXISTS" if if_exists else ""))
    cur.expect_end("the model name")
    return DropModel(name_parts=name_parts, if_exists=if_exists, temporary=temporary)


# --------------------------------------------------------------------------------------------
# WITH clauses of other statements
# --------------------------------------------------------------------------------------------


def _last_with_clause(text: str) -> _Cursor | None:
    """A cursor positioned on the '(' of the last top-level ``WITH (`` clause, or None."""
    cur = _Cursor(text, "WITH options")
    depth = 0
    found: int | None = None
    for k, token in enumerate(cur.tokens):
        if token.is_punct("(", "["):
            depth += 1
        elif token.is_punct(")", "]"):
            depth -= 1
        elif depth == 0 and token.is_word("WITH") and k + 1 < len(cur.tokens):
            if cur.tokens[k + 1].is_punct("("):
                found = k
    if found is None:
        return None
    cur.pos = found + 1
    return cur


def with_options(text: str) -> dict[str, str]:
    """The options of the last top-level ``WITH ('k' = 'v', ...)`` clause of a statement.

    Args:
        text: a statement such as ``CREATE TABLE ... WITH ('connector' = 'print')``.

    Returns:
        The options in written order, unescaped; ``{}`` when there is no such clause.

    Raises:
        SqlSyntaxError: the clause is malformed or repeats a key.
    """
    cur = _last_with_clause(text)
    if cur is None:
        return {}
    entries, _ = _option_entries(cur, "WITH")
    return _options_dict(cur, entries)


def remove_with_options(text: str, keys: Iterable[str]) -> str:
    """Remove option entries from the last top-level WITH clause of a statement.

    Only the ``'key' = 'value'`` entries and the commas that separated them are removed;
    every other character (whitespace, comments, other entries) is kept as is.

    Args:
        text: the statement.
        keys: the option keys to remove (absent keys are ignored).

    Returns:
        The statement without those entries (``text`` itself when nothing matches).

    Raises:
        SqlSyntaxError: the clause is malformed.
    """
    cur = _last_with_clause(text)
    if cur is None:
        return text
    entries, commas = _option_entries(cur, "WITH")
    drop = set(keys)
    kept = [k for k, (key, _) in enumerate(entries) if key.value not in drop]
    if len(kept) == len(entries):
        return text
    # Keep the comma right after each kept entry that another kept entry follows.
    kept_commas = {commas[a] for a in kept[:-1]}
    cuts = [(key.start, value.end) for k, (key, value) in enumerate(entries) if k not in kept]
    cuts += [(c.start, c.end) for c in commas if c not in kept_commas]
    pieces: list[str] = []
    pos = 0
    for start, end in sorted(cuts):
        pieces.append(text[pos:start])
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


# --------------------------------------------------------------------------------------------
# ML_PREDICT calls
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictCall:
    """One ``ML_PREDICT(...)`` call found in a statement.

    Attributes:
        start: offset of ``ML_PREDICT`` in the statement text.
        end: offset just past the call's closing ')'.
        table: the input table identifier as written (``movie_comment``, ```my db`.`t```),
            or the subquery text without its outer parentheses.
        table_is_query: whether the input is a parenthesised subquery.
        model_parts: the unquoted parts of the model name.
        columns: the unquoted DESCRIPTOR column names.
        config: the MAP['k', 'v', ...] argument, unescaped; ``{}`` when absent.
    """

    start: int
    end: int
    table: str
    table_is_query: bool
    model_parts: tuple[str, ...]
    columns: tuple[str, ...]
    config: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model name parts joined with '.'."""
        return ".".join(self.model_parts)


# Argument roles in positional order, with the keyword that opens each and its named form.
_ROLES = ("TABLE", "MODEL", "DESCRIPTOR", "MAP")
_ROLE_FORMS = {
    "TABLE": "TABLE <name> or TABLE (<query>)",
    "MODEL": "MODEL <name>",
    "DESCRIPTOR": "DESCRIPTOR(<column>, ...)",
    "MAP": "MAP['key', 'value', ...]",
}
_NAMED_ROLES = {"INPUT": "TABLE", "MODEL": "MODEL", "ARGS": "DESCRIPTOR", "CONFIG": "MAP"}


def _split_arguments(tokens: Sequence[Token]) -> list[list[Token]]:
    """Split tokens at top-level commas (an empty argument is an empty list)."""
    args: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.is_punct("(", "["):
            depth += 1
        elif token.is_punct(")", "]"):
            depth -= 1
        if depth == 0 and token.is_punct(","):
            args.append([])
        else:
            args[-1].append(token)
    return args


def _role_cursor(cur: _Cursor, role: str, body: list[Token], where: str, named: bool) -> _Cursor:
    """A cursor over one argument, positioned after its leading role keyword."""
    sub = _Cursor(cur.text, cur.context, PredictCallError, tokens=body)
    if not sub.accept_word(role):
        found = _describe(sub.peek())
        if named:
            raise sub.fail(f"{where} must be {_ROLE_FORMS[role]}, found {found}")
        raise sub.fail(
            f"missing {role} argument: {where} must be {_ROLE_FORMS[role]}, found {found}"
        )
    return sub


def _predict_table(sub: _Cursor) -> tuple[str, bool]:
    """Parse the rest of ``TABLE <name>`` or ``TABLE (<query>)``."""
    if sub.at_punct("("):
        close = sub.matching_close(sub.pos)
        if close != len(sub.tokens) - 1:
            raise sub.fail("expected TABLE (<query>) with nothing after the ')'", sub.peek())
        opening, closing = sub.tokens[sub.pos], sub.tokens[close]
        query = sub.text[opening.end : closing.start].strip()
        if not query:
            raise sub.fail("empty subquery in TABLE ()", opening)
        return query, True
    parts = sub.dotted_name("a table name", after="TABLE")
    sub.expect_end("the TABLE argument")
    return sub.text[parts[0].start : parts[-1].end], False


def _predict_descriptor(sub: _Cursor) -> tuple[str, ...]:
    """Parse the rest of ``DESCRIPTOR(c1, c2, ...)``."""
    sub.expect_punct("(", after="DESCRIPTOR")
    if sub.at_punct(")"):
        raise sub.fail("empty DESCRIPTOR: expected at least one column name")
    columns = [sub.expect_ident("a column name", after="DESCRIPTOR(").value]
    while sub.accept_punct(","):
        columns.append(sub.expect_ident("a column name", after="',' in DESCRIPTOR").value)
    sub.expect_punct(")", after="the DESCRIPTOR columns")
    sub.expect_end("DESCRIPTOR(...)")
    return tuple(columns)


def _predict_config(sub: _Cursor) -> dict[str, str]:
    """Parse the rest of ``MAP['k', 'v', ...]``."""
    opening = sub.expect_punct("[", after="MAP")
    close = sub.matching_close(sub.pos - 1)
    if close != len(sub.tokens) - 1:
        raise sub.fail("expected MAP[...] with nothing after the ']'", opening)
    elements = _split_arguments(sub.tokens[sub.pos : close])
    if elements == [[]]:
        return {}
    values: list[str] = []
    for element in elements:
        if not element:
            raise sub.fail("empty entry in MAP[...]", opening)
        if len(element) != 1 or element[0].kind != "string":
            found = _describe(element[0])
            raise sub.fail(f"MAP entries must be string literals, found {found}", element[0])
        values.append(element[0].value)
    if len(values) % 2:
        raise sub.fail(
            f"MAP has an odd number of entries ({len(values)}); keys and values must alternate",
            opening,
        )
    config: dict[str, str] = {}
    for k in range(0, len(values), 2):
        if values[k] in config:
            raise sub.fail(f"duplicate CONFIG key '{values[k]}'", elements[k][0])
        config[values[k]] = values[k + 1]
    return config


def _parse_predict_call(cur: _Cursor, index: int) -> PredictCall:
    """Parse the ML_PREDICT call whose name is ``cur.tokens[index]``."""
    name = cur.tokens[index]
    close = cur.matching_close(index + 1)
    if close < 0:
        raise cur.fail("unbalanced parentheses in the call", name)
    bodies: dict[str, tuple[list[Token], str, bool]] = {}
    named = False
    args = _split_arguments(cur.tokens[index + 2 : close]) if close > index + 2 else []
    for position, arg in enumerate(args, 1):
        if not arg:
            raise cur.fail(f"argument {position} is empty", name)
        if len(arg) >= 2 and arg[0].kind == "word" and arg[1].is_punct("=>"):
            role = _NAMED_ROLES.get(arg[0].text.upper())
            if role is None:
                raise cur.fail(
                    f"unknown named argument {arg[0].text} (expected INPUT, MODEL, ARGS or CONFIG)",
                    arg[0],
                )
            where, body, named = f"{arg[0].text.upper()} =>", arg[2:], True
            if not body:
                raise cur.fail(f"expected a value after {where}", arg[1])
        else:
            if named:
                raise cur.fail("positional argument after named arguments", arg[0])
            if position > len(_ROLES):
                raise cur.fail(
                    "too many arguments (expected TABLE, MODEL, DESCRIPTOR and an optional MAP)",
                    arg[0],
                )
            role, where, body = _ROLES[position - 1], f"argument {position}", arg
        if role in bodies:
            raise cur.fail(f"{role} argument given twice", arg[0])
        bodies[role] = (body, where, named)
    subs = {role: _role_cursor(cur, role, *spec) for role, spec in bodies.items()}
    for role in _ROLES[:3]:
        if role not in subs:
            raise cur.fail(f"missing {role} argument ({_ROLE_FORMS[role]})", name)
    table, is_query = _predict_table(subs["TABLE"])
    model_parts = _model_name(subs["MODEL"], "MODEL")
    subs["MODEL"].expect_end("the MODEL argument")
    columns = _predict_descriptor(subs["DESCRIPTOR"])
    config = _predict_config(subs["MAP"]) if "MAP" in subs else {}
    return PredictCall(
        start=name.start,
        end=cur.tokens[close].end,
        table=table,
        table_is_query=is_query,
        model_parts=model_parts,
        columns=columns,
        config=config,
    )


def find_predict_calls(text: str) -> list[PredictCall]:
    """Find and parse every ``ML_PREDICT(...)`` call in a statement.

    Calls inside string literals, comments or backquoted identifiers, and words that merely
    contain ML_PREDICT (``ml_predict_col``), are ignored. Calls nested in subqueries, joins,
    CTEs or in the TABLE argument of another call are all returned.

    Args:
        text: the statement.

    Returns:
        The calls in order of position (an enclosing call before the calls nested in it).

    Raises:
        PredictCallError: a call is malformed (missing TABLE/MODEL/DESCRIPTOR, unknown named
            argument, bad MAP, empty DESCRIPTOR, unbalanced parentheses, ...).
        SqlSyntaxError: the text cannot be tokenized.
    """
    cur = _Cursor(text, "ML_PREDICT", PredictCallError)
    calls: list[PredictCall] = []
    for k, token in enumerate(cur.tokens):
        if (
            token.is_word("ML_PREDICT")
            and k + 1 < len(cur.tokens)
            and cur.tokens[k + 1].is_punct("(")
            and not (k and cur.tokens[k - 1].is_punct("."))
        ):
            calls.append(_parse_predict_call(cur, k))
    return calls


# --------------------------------------------------------------------------------------------
# Environment substitution
# --------------------------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_env(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` inside string literals with environment values.

    Only string literal tokens are touched; a ``'`` in an inserted value is doubled.
    ``$${NAME}`` is an escape that becomes the literal text ``${NAME}``.

    Args:
        text: SQL text (a script or a statement).
        environ: the variables, e.g. ``os.environ``.

    Returns:
        The text with the references replaced.

    Raises:
        ConfigurationError: a referenced variable is not set (the message names the variable
            and line, never any value).
        SqlSyntaxError: the text cannot be tokenized.
    """

    pieces: list[str] = []
    for token in tokenize(text):
        if token.kind == "string" and "$" in token.text:
            line = _line_at(text, token.start)
            pieces.append(_ENV_RE.sub(lambda match: _expand(match, environ, line), token.text))  # noqa: B023 - called at once
        else:
            pieces.append(token.text)
    return "".join(pieces)


def _expand(match: re.Match[str], environ: Mapping[str, str], line: int) -> str:
    """Expand one ``${NAME}`` (or ``$${NAME}`` escape) found in a string literal at ``line``."""
    escaped, name = match.group(1), match.group(2)
    if escaped:
        return "${" + name + "}"
    if name not in environ:
        raise ConfigurationError(
            f"environment variable {name} is not set "
            f"(referenced in a string literal starting at line {line})"
        )
    return environ[name].replace("'", "''")
