"""Parsers of the option values that are more than a number or a word: ``stop`` (a string,
comma-separated strings or a JSON array), ``top-k``, ``tools`` (JSON), ``documents`` and the
parameters of DashScope's native API that its compatible mode lacks.

Pure functions: each returns the typed value or raises ValueError with a message that says what
is allowed (:mod:`flink_ml_predict.options` turns it into an OptionValueError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .documents import Documents, parse_documents_option

__all__ = ["documents", "native_only", "result_format", "stop", "tools", "top_k"]


def _json_array(value: str, what: str, example: str) -> list[Any]:
    """A non-empty JSON array given as an option value."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"'{shown}' is not JSON ({exc.msg} at character {exc.pos + 1}); give "
                         f"{what} as a JSON array such as {example}") from None
    if not isinstance(data, list) or not data:
        shown = "an empty array" if data == [] else f"a JSON {type(data).__name__}"
        raise ValueError(f"must be a non-empty JSON array of {what}, not {shown}; e.g. {example}")
    return data


def _is_token_id(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool) and item >= 0


_STOP_FORMS = ('a JSON array of strings ["你好", "天气"], of token ids [108386, 104307] or of '
               "token-id arrays [[108386, 103924], [35946, 101243]]")


def stop(value: str) -> str | list[Any]:
    """``stop``: one string, comma-separated strings (a list), or a JSON array of strings, of token
    ids or of token-id arrays (one kind per list, as DashScope requires).

    Examples:
        >>> stop("你好"), stop("END, STOP"), stop('[[1, 2], [3]]')
        ('你好', ['END', 'STOP'], [[1, 2], [3]])
    """
    if not value.strip().startswith("["):
        items = [item for item in (part.strip() for part in value.split(",")) if item]
        if not items:
            raise ValueError("must give at least one stop sequence")
        return items[0] if len(items) == 1 else items
    items = _json_array(value.strip(), "stop sequences", _STOP_FORMS)
    if all(isinstance(item, str) and item for item in items):
        return items
    if all(_is_token_id(item) for item in items):
        return items
    if all(isinstance(item, list) and item and all(_is_token_id(i) for i in item)
           for item in items):
        return items
    if any(isinstance(item, str) for item in items) and any(
            _is_token_id(item) or isinstance(item, list) for item in items):
        raise ValueError(f"'{value}' mixes strings and token ids; a stop list holds strings "
                         "only, token ids only or token-id arrays only")
    raise ValueError(f"'{value}' is not a stop list: give {_STOP_FORMS} (strings not empty, "
                     "token ids integers >= 0)")


def has_token_ids(value: Any) -> bool:
    """Whether a parsed ``stop`` value holds token ids (DashScope only)."""
    return isinstance(value, list) and not all(isinstance(item, str) for item in value)


def top_k(value: str) -> int:
    """``top-k``: an integer >= 1 (DashScope's None is the option left out)."""
    text = value.strip()
    hint = "top-k is an integer >= 1 (leave the option out, or give a value above 100, to not " \
           "use top-k)"
    if text.lower() in ("none", "null"):
        raise ValueError(f"leave the option out for DashScope's None; {hint}")
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"'{value}' is not an integer; {hint}") from None
    if number < 1:
        raise ValueError(f"{number} is outside the allowed range >= 1; {hint}")
    return number


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_EXAMPLE = ('[{"type": "function", "function": {"name": "get_weather", "description": "...", '
                 '"parameters": {"type": "object", "properties": {}}}}]')


def tools(value: str) -> list[dict[str, Any]]:
    """``tools``: a non-empty JSON array of tool objects, returned (and sent) as given; a
    function tool needs a name of letters, digits, '_' or '-' and a JSON Schema object as its
    parameters, if it has any."""
    given = _json_array(value, "tool objects", _TOOL_EXAMPLE)
    for i, tool in enumerate(given):
        if not isinstance(tool, dict):
            raise ValueError(f"tool {i} is not a JSON object; e.g. {_TOOL_EXAMPLE}")
        kind = tool.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f'tool {i} has no "type" (e.g. "function")')
        if kind != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict):
            raise ValueError(f'tool {i} of type "function" needs a "function" object')
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ValueError(f'tool {i}: "function" needs a "name" of letters, digits, "_" or "-" '
                             "(at most 64 characters)")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise ValueError(f'tool {i}: "parameters" must be a JSON Schema object')
    return given


def documents(value: str) -> Documents:
    """``documents``: see :func:`flink_ml_predict.documents.parse_documents_option`."""
    return parse_documents_option(value)


def result_format(value: str) -> str:
    """``result-format``: 'message' (what the compatible mode always answers) or an error."""
    if value.strip().lower() == "message":
        return "message"
    raise ValueError(f"'{value}' is not available: DashScope's compatible mode answers in the "
                     "message format only ('message' is accepted and sends nothing)")


def native_only(reason: str) -> Callable[[str], Any]:
    """The parser of a parameter of DashScope's native API that the compatible mode lacks: every
    value is an error that says what to use instead."""

    def parse(value: str) -> Any:
        raise ValueError(f"a parameter of DashScope's native API, not of the OpenAI-compatible "
                         f"mode this package calls; {reason}")

    return parse
