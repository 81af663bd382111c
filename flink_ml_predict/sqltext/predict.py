"""The ML_PREDICT locator: every ``ML_PREDICT(...)`` call of a statement, parsed.

``ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(col) [, MAP['k', 'v', ...]])`` with positional or named
arguments (``INPUT =>``, ``MODEL =>``, ``ARGS =>``, ``CONFIG =>``), a table name or ``TABLE
(subquery)``. Problems are :class:`~flink_ml_predict.errors.PredictCallError`. Rewriting the calls
is :mod:`flink_ml_predict.rewrite`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import PredictCallError
from .lexer import Cursor, Token, describe


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


def _role_cursor(cur: Cursor, role: str, body: list[Token], where: str, named: bool) -> Cursor:
    """A cursor over one argument, positioned after its leading role keyword."""
    sub = Cursor(cur.text, cur.context, PredictCallError, tokens=body)
    if not sub.accept_word(role):
        found = describe(sub.peek())
        if named:
            raise sub.fail(f"{where} must be {_ROLE_FORMS[role]}, found {found}")
        raise sub.fail(
            f"missing {role} argument: {where} must be {_ROLE_FORMS[role]}, found {found}"
        )
    return sub


def _predict_table(sub: Cursor) -> tuple[str, bool]:
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


def _predict_descriptor(sub: Cursor) -> tuple[str, ...]:
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


def _predict_config(sub: Cursor) -> dict[str, str]:
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
            found = describe(element[0])
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


def _parse_predict_call(cur: Cursor, index: int) -> PredictCall:
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
    model_parts = subs["MODEL"].model_name("MODEL")
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
    cur = Cursor(text, "ML_PREDICT", PredictCallError)
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
