"""``${NAME}`` substitution inside string literals, from the environment.

References outside string literals (comments, identifiers, code) are left alone; ``$${NAME}``
escapes a reference. No message ever contains a value, so keys stay out of logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import ConfigurationError
from .lexer import line_at, tokenize

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
            line = line_at(text, token.start)
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
