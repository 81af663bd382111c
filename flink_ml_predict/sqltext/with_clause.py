"""``WITH ('key' = 'value', ...)`` clauses: read, and option entries removed from them.

The same clause closes CREATE MODEL (:mod:`.ddl`) and Flink's own CREATE TABLE; the runner drops
options that only Alibaba's Flink knows from the latter, keeping every other character.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .lexer import Cursor, Token


def option_entries(cur: Cursor, clause: str) -> tuple[list[tuple[Token, Token]], list[Token]]:
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


def options_dict(cur: Cursor, entries: Sequence[tuple[Token, Token]]) -> dict[str, str]:
    """The options as a dict in written order; a repeated key is an error."""
    options: dict[str, str] = {}
    for key, value in entries:
        if key.value in options:
            raise cur.fail(f"duplicate option '{key.value}'", key)
        options[key.value] = value.value
    return options


def _last_with_clause(text: str) -> Cursor | None:
    """A cursor positioned on the '(' of the last top-level ``WITH (`` clause, or None."""
    cur = Cursor(text, "WITH options")
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
    entries, _ = option_entries(cur, "WITH")
    return options_dict(cur, entries)


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
    entries, commas = option_entries(cur, "WITH")
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
