"""Lexing of Flink SQL text: tokens, and a recursive-descent cursor over the significant ones.

One tokenizer (:func:`tokenize`) drives the whole SQL text layer. The statement parsers walk the
*significant* tokens (everything but whitespace and comments) with a :class:`Cursor`, which
reports problems naming what was expected and the line where it was not found. Positions
(``start``/``end``) are character offsets into the text that was given.

No error message built here ever quotes the content of a string literal (:func:`describe`), so
an api-key written in a script never reaches a log through the parsers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError, SqlSyntaxError

# A byte order mark may open a script (editors on Windows write one): it counts as whitespace.
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\A\ufeff\s*|\s+)
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


def line_at(text: str, pos: int) -> int:
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
            line = line_at(text, pos)
            raise SqlSyntaxError(f"unterminated block comment starting at line {line}")
        match = _TOKEN_RE.match(text, pos)
        assert match is not None and match.lastgroup is not None  # punct matches any char
        kind = match.lastgroup
        if kind == "punct" or kind == "word":
            # A quote that the string/qident branches could not close is unterminated.
            if text[pos] == "`":
                raise SqlSyntaxError(
                    f"unterminated backquoted identifier starting at line {line_at(text, pos)}"
                )
            if _STRING_PREFIX_RE.match(text, pos):
                raise SqlSyntaxError(
                    f"unterminated string literal starting at line {line_at(text, pos)}"
                )
        tokens.append(Token(kind, match.group(), pos, match.end()))
        pos = match.end()
    return tokens


def significant(tokens: Iterable[Token]) -> list[Token]:
    """The tokens that are neither whitespace nor comments."""
    return [t for t in tokens if t.significant]


def leading_words(tokens: Sequence[Token], count: int) -> list[str]:
    """The first ``count`` significant tokens: words upper-cased, other tokens as written."""
    return [t.text.upper() if t.kind == "word" else t.text for t in tokens[:count]]


def quote_identifier(name: str) -> str:
    """Backquote an identifier, doubling backquotes inside it."""
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """Single-quote a string literal, doubling quotes inside it."""
    return "'" + value.replace("'", "''") + "'"


def describe(token: Token | None) -> str:
    """Describe a token for an error message without ever quoting a literal's content."""
    if token is None:
        return "end of statement"
    if token.kind == "string":
        return "string literal"
    if token.kind == "number":
        return f"number {token.text}"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return f"'{text}'"


class Cursor:
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
        self.tokens = list(tokens) if tokens is not None else significant(tokenize(text))
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
        return self.error_class(f"{self.context}: {message} at line {line_at(self.text, where)}")

    def expected(self, what: str, after: str | None = None) -> ConfigurationError:
        """Build an 'expected X [after Y], found Z' error about the next token."""
        place = f" after {after}" if after else ""
        return self.fail(f"expected {what}{place}, found {describe(self.peek())}")

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

    def model_name(self, after: str) -> tuple[str, ...]:
        """Consume ``[catalog.][db.]name`` and return its unquoted parts."""
        parts = self.dotted_name("a model name", after)
        if len(parts) > 3:
            raise self.fail("a model name has at most 3 parts (catalog.database.model)", parts[0])
        return tuple(p.value for p in parts)

    def expect_end(self, after: str) -> None:
        """Fail unless every token has been consumed."""
        if not self.at_end():
            raise self.fail(f"unexpected {describe(self.peek())} after {after}")

    def matching_close(self, open_index: int) -> int:
        """Index of the token closing the bracket at ``open_index``, or -1 if none."""
        return closing_bracket(self.tokens, open_index)[0]


_CLOSERS = {"(": ")", "[": "]"}


def closing_bracket(tokens: Sequence[Token], open_index: int) -> tuple[int, Token | None]:
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
