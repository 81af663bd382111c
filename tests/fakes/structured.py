"""Structured answers of the fake server: JSON that fits the schema a request carries, checked
the way OpenAI checks it, and wrong answers on request.

:class:`StructuredResponder` is the fake's chat responder (the ``responder`` seam of
:class:`~tests.fakes.openai_server.FaultInjectingServer`, there as ``server.structured``):

* ``response_format`` ``json_schema``: the schema must pass OpenAI's strict-mode rules (every
  object lists all its properties in ``required`` and sets ``additionalProperties`` false; only
  JSON Schema types OpenAI supports), else 400 ``Invalid schema for response_format ...``; the
  answer is the demo's JSON of that schema (:func:`flink_ml_predict.demo_answers.schema_value`:
  labels from the rule-based classifier, numbers from the input's words, one answer per choice);
* ``json_object``: the messages must mention JSON (else OpenAI's 400); the schema is read from
  the system message (after ``JSON Schema:``) and answered as above; without one, the answer is
  ``{"answer": <the plain text answer>}``;
* anything else: the plain rule-based text.

Every request's ``response_format`` (None when absent) is kept in :attr:`received`. Wrong
answers are scripted per row with :meth:`script` / :meth:`always`; a row's key is its FIRST user
message, so a script also covers the requests that ask the model again after a wrong answer
(whose last user message is the package's repair request).
"""

from __future__ import annotations

import collections
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from flink_ml_predict.demo_answers import (
    ApiError,
    message_text,
    rule_based_answer,
    schema_answers,
    structured_answers,
)

__all__ = ["StructuredResponder", "WrongAnswer", "row_key", "strict_schema_problem"]

_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def row_key(body: Any) -> str | None:
    """The first user message of a chat request: the row's input."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    return next((message_text(m.get("content")) for m in body["messages"]
                 if isinstance(m, dict) and m.get("role") == "user"), None)


@dataclass(frozen=True)
class WrongAnswer:
    """An answer that does not fit: applied to each choice's JSON text.

    * ``not-json``: ``Sure! {"label": `` (a chatty reply cut short);
    * ``missing``: the JSON without top-level field ``field``;
    * ``wrong-type``: top-level ``field`` set to ``["not", "a", "<JSON type>"]``, or, for an
      array field, to the string ``"not an array"``;
    * ``text``: ``text`` as it is.
    """

    kind: str
    field: str | None = None
    text: str | None = None

    @classmethod
    def not_json(cls) -> WrongAnswer:
        return cls("not-json")

    @classmethod
    def missing(cls, field: str) -> WrongAnswer:
        return cls("missing", field)

    @classmethod
    def wrong_type(cls, field: str) -> WrongAnswer:
        return cls("wrong-type", field)

    @classmethod
    def literal(cls, text: str) -> WrongAnswer:
        return cls("text", text=text)

    def apply(self, answer: str) -> str:
        if self.kind == "not-json":
            return 'Sure! {"label": '
        if self.kind == "text":
            return self.text or ""
        value = json.loads(answer)
        if self.field not in value:
            raise ValueError(f"the answer has no field {self.field!r}: {answer}")
        if self.kind == "missing":
            del value[self.field]
        elif self.kind == "wrong-type":
            found = value[self.field]
            value[self.field] = ("not an array" if isinstance(found, list)
                                 else ["not", "a", _JSON_TYPES.get(type(found), "value")])
        else:
            raise ValueError(f"unknown wrong answer {self.kind!r}")
        return json.dumps(value, ensure_ascii=False)


def strict_schema_problem(schema: Any, context: tuple[str, ...] = ()) -> str | None:
    """What OpenAI's strict mode refuses in a schema (its message's wording), or None."""
    if not isinstance(schema, dict):
        return f"In context={context}, schema must be a JSON Schema object."
    if "anyOf" in schema:
        if not context:
            return "In context=(), the root schema must be an object, not anyOf."
        for i, option in enumerate(schema["anyOf"]):
            if problem := strict_schema_problem(option, (*context, "anyOf", str(i))):
                return problem
        return None
    types = schema.get("type")
    kinds = types if isinstance(types, list) else [types]
    if not kinds or not all(k in _TYPES for k in kinds):
        return f"In context={context}, schema must have a 'type' key of {sorted(_TYPES)}."
    if not context and kinds != ["object"]:
        return "In context=(), the root schema must be of type 'object'."
    if "object" in kinds:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return (f"In context={context}, 'additionalProperties' is required to be supplied "
                    "and to be false.")
        missing = [k for k in properties if k not in (schema.get("required") or [])]
        if missing:
            return (f"In context={context}, 'required' is required to be supplied and to be an "
                    f"array including every key in properties. Missing '{missing[0]}'.")
        for key, sub in properties.items():
            if problem := strict_schema_problem(sub, (*context, "properties", key)):
                return problem
    if "array" in kinds:
        if "items" not in schema:
            return f"In context={context}, array schema missing items."
        return strict_schema_problem(schema["items"], (*context, "items"))
    return None


def _schema_in_system_message(body: dict[str, Any]) -> dict[str, Any] | None:
    system = "\n".join(message_text(m.get("content")) for m in body.get("messages") or []
                       if isinstance(m, dict) and m.get("role") == "system")
    at = system.find("JSON Schema:")
    start = system.find("{", at) if at >= 0 else -1
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(system, start)
    except json.JSONDecodeError:
        return None
    return schema if isinstance(schema, dict) else None


class StructuredResponder:
    """The chat responder of the fake server (thread-safe); see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, collections.deque[WrongAnswer | None]] = {}
        self._always: dict[str, WrongAnswer] = {}
        self.received: list[dict[str, Any] | None] = []
        """The ``response_format`` of every chat request, in arrival order."""

    def script(self, key: str, answers: list[WrongAnswer | None]) -> None:
        """The next requests of row ``key`` get these wrong answers in order (None: a good one)."""
        with self._lock:
            self._scripts.setdefault(key, collections.deque()).extend(answers)

    def always(self, key: str, answer: WrongAnswer) -> None:
        """Every request of row ``key`` (once its script is used up) gets ``answer``."""
        with self._lock:
            self._always[key] = answer

    def clear(self) -> None:
        """Forget scripts, always-answers and the received formats."""
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self.received.clear()

    def _wrong(self, key: str | None) -> WrongAnswer | None:
        with self._lock:
            if key is None:
                return None
            if queue := self._scripts.get(key):
                return queue.popleft()
            return self._always.get(key)

    def __call__(self, body: dict[str, Any]) -> str | list[str]:
        response_format = body.get("response_format")
        with self._lock:
            self.received.append(response_format)
        texts = self._structured(body, response_format)
        if texts is None:
            return rule_based_answer(body)
        wrong = self._wrong(row_key(body))
        return texts if wrong is None else [wrong.apply(t) for t in texts]

    def _structured(self, body: dict[str, Any], response_format: Any) -> list[str] | None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            name = spec.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                raise ApiError(400, "Invalid 'response_format.json_schema.name': string does not "
                               "match pattern. Expected a string that matches the pattern "
                               "'^[a-zA-Z0-9_-]+$'.", "invalid_value", "response_format")
            if spec.get("strict") is True and (
                    problem := strict_schema_problem(spec.get("schema"))):
                raise ApiError(400, f"Invalid schema for response_format '{name}': {problem}",
                               "invalid_json_schema", "response_format")
            return structured_answers(body)
        if kind == "json_object":
            text = " ".join(message_text(m.get("content")) for m in body.get("messages") or []
                            if isinstance(m, dict))
            if "json" not in text.lower():
                raise ApiError(400, "'messages' must contain the word 'json' in some form, to "
                               "use 'response_format' of type 'json_object'.", None, "messages")
            schema = _schema_in_system_message(body)
            if schema is not None:
                return schema_answers(schema, body)
            return [json.dumps({"answer": rule_based_answer(body)}, ensure_ascii=False)] * int(
                body.get("n") or 1)
        return None
