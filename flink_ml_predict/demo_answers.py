"""What the demo server answers: rules, not a model (see :mod:`flink_ml_predict.demo_server`).

:func:`rule_based_answer` turns a chat request into text: a classification prompt with a bracketed
label list gets a label chosen by keyword counts, a prompt about ID numbers (身份证) gets the user
text with each ID number's last four characters masked, anything else is echoed. A request with
``response_format`` ``json_schema`` gets a JSON object of that schema (:func:`schema_value`).
:func:`chat_completion`, :func:`embeddings` and :func:`model_list` build the OpenAI-shaped response
bodies (embeddings: hash-derived vectors) and refuse malformed requests with :class:`ApiError`.
The test fake (``tests/fakes/``) answers with these too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MODELS", "ApiError", "chat_completion", "demo_answer", "embedding_vector",
           "embeddings", "estimate_tokens", "message_text", "model_list", "rule_based_answer",
           "schema_answers", "schema_value", "structured_answers"]

MODELS = ("gpt-4o-mini", "qwen-plus", "qwen-turbo", "text-embedding-3-small", "text-embedding-v3")

_POSITIVE = ("love great good excellent wonderful amazing awesome best happy enjoy beautiful"
             " romantic gentle like 爱 浪漫 温和 溫和 好 棒 喜欢 喜歡"
             " 精彩 感动 感動 美 赞 讚").split()
_NEGATIVE = ("bad boring terrible awful hate worst poor dull disappointing disappointed waste"
             " 乏善可陈 乏善可陳 差 无聊 無聊 糟糕 失望 烂 爛 难看 難看 讨厌 討厭").split()
_SYNONYMS = {"positive": ("positive", "正面", "积极", "積極"),
             "negative": ("negative", "负面", "負面", "消极", "消極"),
             "neutral": ("neutral", "中性", "中立"), "mixed": ("mixed", "混合")}
_LABEL_LIST = re.compile(r"\[([^\[\]]+,[^\[\]]+)\]")
_CLASSIFY_HINT = re.compile(r"classif|label|categor|分类|分類|类别|類別|标签|標籤", re.IGNORECASE)
_ID_NUMBER = re.compile(r"(?<![0-9])([0-9]{14})[0-9]{3}[0-9Xx](?![0-9A-Za-z])")


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else "" if content is None else str(content)


def _score(text: str, words: Iterable[str]) -> int:
    lowered = text.lower()
    return sum(len(re.findall(rf"\b{re.escape(w)}\b", lowered)) if w.isascii() else lowered.count(w)
               for w in words)


def _classify(text: str, labels: list[str]) -> str:
    positive, negative = _score(text, _POSITIVE), _score(text, _NEGATIVE)
    wanted = ("positive" if positive > negative else "negative" if negative > positive
              else "mixed" if positive else "neutral")
    for candidate in (wanted, "neutral"):
        for label in labels:
            if label.lower() in _SYNONYMS[candidate]:
                return label
    return labels[0]


def rule_based_answer(request: dict[str, Any]) -> str:
    """The demo's answer to a chat request body. Deterministic; not a model.

    With ``system`` = the system (and developer) messages and ``user`` = the last user message:

    1. ``system`` asks to classify (classify/label/category/分类/标签) and holds a bracketed list
       like ``[positive, negative, neutral, mixed]``: the label that keyword counts in ``user``
       pick (more positive words: positive; more negative: negative; a tie with hits: mixed; no
       hit: neutral; a label missing from the list falls back to neutral, then the first label).
    2. ``system`` mentions 身份证: ``user`` with the last four characters of every 18-character
       mainland ID number (17 digits + a digit or X) replaced by ``****``.
    3. Otherwise ``user`` unchanged.
    """
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    system = "\n".join(message_text(m.get("content")) for m in messages
                       if m.get("role") in ("system", "developer"))
    user = next((message_text(m.get("content")) for m in reversed(messages)
                 if m.get("role") == "user"), "")
    match = _LABEL_LIST.search(system)
    if match and _CLASSIFY_HINT.search(system):
        labels = [s for s in (p.strip().strip("'\"") for p in match.group(1).split(",")) if s]
        if labels:
            return _classify(user, labels)
    if "身份证" in system or "身份證" in system:
        return _ID_NUMBER.sub(r"\1****", user)
    return user


# --- structured answers ----------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_LABEL_NAME = re.compile(r"label|sentiment|category|class", re.IGNORECASE)
_DEFAULT_LABELS = ["positive", "negative", "neutral", "mixed"]
_MAX_ITEMS = 3


def _options(description: str) -> list[str]:
    """The alternatives a description lists (``positive, negative or mixed``), else []."""
    bracketed = re.search(r"\[([^\[\]]+)\]", description)
    parts = [p.strip(" .'\"") for p in re.split(r",|/|\||\bor\b",
                                               bracketed.group(1) if bracketed else description)]
    parts = [p for p in parts if p]
    return parts if len(parts) >= 2 and all(len(p.split()) <= 2 for p in parts) else []


def _keywords(words: list[str]) -> list[tuple[str, int]]:
    """Up to three distinct words, longest first (ties in text order), with their counts."""
    distinct = sorted(dict.fromkeys(words), key=lambda w: -len(w))[:_MAX_ITEMS]
    return [(w, words.count(w)) for w in distinct]


def schema_value(schema: dict[str, Any], text: str, *, choice: int = 0) -> Any:
    """A value of a JSON Schema derived from ``text`` by rules (``words`` = its ``\\w+`` runs).

    * a nullable field whose description mentions null: ``null``;
    * string: a label when the description lists alternatives (``positive, negative or mixed``)
      or the field is named like a label (label, sentiment, category, class; then the labels
      positive, negative, neutral, mixed), chosen by :func:`rule_based_answer`'s keyword counts;
      a date (``YYYY-MM-DD`` in the description) ``2024-01-DD`` and a date-time ``2024-01-DD
      12:34:56.789`` with DD = the number of words (1 to 28); else ``text`` itself;
    * integer: the number of words; number: ``round(1 - 1 / (1 + words), 2)``; boolean: whether
      the number of words is even;
    * array: one item per keyword (up to three distinct words, longest first), derived from the
      keyword as text and its number of occurrences as number of words; ``{key, value}``
      entries (a map) have the keyword as key; object: every property from ``text``.

    Choice ``k`` > 0 of ``n`` adds ``k`` to integers and `` #k+1`` to free text.
    """
    return _value(schema, text, len(_WORD.findall(text)), choice, "")


def _value(schema: dict[str, Any], text: str, size: int, choice: int, name: str) -> Any:
    types = schema.get("type", "object")
    types = types if isinstance(types, list) else [types]
    if schema.get("anyOf"):
        types = [a.get("type") for a in schema["anyOf"]]
        schema = next((a for a in schema["anyOf"] if a.get("type") != "null"), schema)
    description = str(schema.get("description") or "")
    if "null" in types and re.search(r"\bnull\b", description):
        return None
    kind = next((t for t in types if t != "null"), "null")
    if kind == "object":
        return {key: _value(sub, text, size, choice, key)
                for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        items = schema.get("items") or {}
        entry = items.get("properties") or {}
        if set(entry) == {"key", "value"}:
            return [{"key": w, "value": _value(entry["value"], w, n, choice, "")}
                    for w, n in _keywords(_WORD.findall(text))]
        return [_value(items, w, n, choice, "") for w, n in _keywords(_WORD.findall(text))]
    if kind == "integer":
        return size + choice
    if kind == "number":
        return round(1 - 1 / (1 + size), 2)
    if kind == "boolean":
        return size % 2 == 0
    if kind != "string":
        return None
    labels = _options(description) or (_DEFAULT_LABELS if _LABEL_NAME.search(name) else [])
    day = min(max(size, 1), 28)
    if labels:
        return _classify(text, labels)
    if "HH:MM:SS" in description:
        return f"2024-01-{day:02d} 12:34:56.789"
    if "YYYY-MM-DD" in description:
        return f"2024-01-{day:02d}"
    return text if choice == 0 else f"{text} #{choice + 1}"


def _input_text(request: dict[str, Any]) -> str:
    """The first user message: the row's input, also when a model asks again."""
    return next((message_text(m.get("content")) for m in request.get("messages") or []
                 if isinstance(m, dict) and m.get("role") == "user"), "")


def schema_answers(schema: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """One JSON text of ``schema`` per choice (``n``) of a chat request, from its input."""
    given = request.get("n")
    n = given if isinstance(given, int) else 1
    text = _input_text(request)
    return [json.dumps(schema_value(schema, text, choice=k), ensure_ascii=False)
            for k in range(max(n, 1))]


def structured_answers(request: dict[str, Any]) -> list[str] | None:
    """For ``response_format`` ``json_schema``: one JSON text per choice, else None."""
    response_format = request.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema_answers(schema, request) if isinstance(schema, dict) else None


def demo_answer(request: dict[str, Any]) -> str | list[str]:
    """The demo's answer: JSON of the requested schema, else :func:`rule_based_answer`'s text."""
    return structured_answers(request) or rule_based_answer(request)


def embedding_vector(text: str, dimension: int) -> list[float]:
    """A deterministic vector for ``text``: sha256-derived values in [-1, 1], float32-exact."""
    raw = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest()
                   for i in range(-(-4 * dimension // 32)))
    integers = struct.unpack(f"<{dimension}I", raw[:4 * dimension])
    values = [n / 0xFFFFFFFF * 2.0 - 1.0 for n in integers]
    # Through float32, so that the "float" and "base64" encodings carry the very same numbers.
    return list(struct.unpack(f"<{dimension}f", struct.pack(f"<{dimension}f", *values)))


def estimate_tokens(text: str) -> int:
    """A rough token count: about four characters a token, at least one."""
    return max(1, (len(text) + 3) // 4)


# --- request bodies -> response bodies ------------------------------------------------------


class ApiError(Exception):
    """A request answered with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _require(ok: bool, param: str | None, message: str, code: str | None = "invalid_value"
             ) -> None:
    if not ok:
        raise ApiError(400, message, code, param)


def _model(body: Any) -> str:
    _require(isinstance(body, dict), None, "The request body must be a JSON object.", None)
    model = body.get("model")
    _require(isinstance(model, str) and bool(model), "model", "you must provide a model "
             "parameter", "missing_required_parameter")
    return str(model)


def _count(value: Any, default: int, top: int, param: str) -> int:
    value = default if value is None else value
    _require(isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= top, param,
             f"{value!r} is not valid for '{param}': expected an integer from 1 to {top}")
    return int(value)


def chat_completion(body: Any,
                    answer: Callable[[dict[str, Any]], str | list[str]] = demo_answer,
                    ) -> dict[str, Any]:
    """The ``chat.completion`` for a request body: ``n`` choices of ``answer(body)`` (a text, or
    one text per choice).

    Raises:
        ApiError: the body is not a valid chat request.
    """
    model = _model(body)
    messages = body.get("messages")
    _require(isinstance(messages, list) and bool(messages) and all(
        isinstance(m, dict) for m in messages), "messages", "'messages' is a required property "
        "and must be a non-empty array of messages", "missing_required_parameter")
    n, text = _count(body.get("n"), 1, 128, "n"), answer(body)
    if isinstance(text, list) and len(text) == n and all(isinstance(t, str) for t in text):
        contents = text
    elif isinstance(text, str):
        contents = [text if i == 0 else f"{text} #{i + 1}" for i in range(n)]
    else:
        raise TypeError(f"the answer is {text!r}, expected a str or {n} of them")
    prompt = sum(estimate_tokens(message_text(m.get("content"))) for m in messages)
    completion = sum(estimate_tokens(c) for c in contents)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": model, "system_fingerprint": None,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c},
                         "finish_reason": "stop", "logprobs": None}
                        for i, c in enumerate(contents)],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


def embeddings(body: Any, default_dimension: int = 8) -> dict[str, Any]:
    """The embeddings ``list`` for a request body (``encoding_format`` float or base64).

    Raises:
        ApiError: the body is not a valid embeddings request.
    """
    model = _model(body)
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    _require(isinstance(texts, list) and bool(texts) and all(isinstance(t, str) for t in texts),
             "input", "'input' is a required property: a string or a non-empty array of strings",
             "missing_required_parameter")
    size = _count(body.get("dimensions"), default_dimension, 65536, "dimensions")
    encoding = body.get("encoding_format") or "float"
    _require(encoding in ("float", "base64"), "encoding_format",
             f"{encoding!r} is not one of ['float', 'base64'] - 'encoding_format'")
    data = []
    for i, text in enumerate(texts):
        vector: Any = embedding_vector(text, size)
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = sum(estimate_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_list() -> dict[str, Any]:
    """The ``GET /models`` answer."""
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 1_700_000_000,
                                        "owned_by": "flink-ml-predict-demo"} for m in MODELS]}
