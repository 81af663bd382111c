"""Documents of a qwen-long dialogue: file ids (``fileid://...``) and inline text, sent as system
messages between the system prompt and the user message, as DashScope's compatible mode takes
them: every file id in ONE system message (``fileid://id1,fileid://id2``), each inline text in a
system message of its own.

A document value is either file-id references -- ``fileid://file-fe-xxx`` or several separated by
commas, ``fileid://a,fileid://b`` -- or inline text (anything not starting with ``fileid://``).
The ``documents`` option takes one value, or a JSON array of values (a value that starts with
``[`` is read as JSON); ``document-column`` names an INPUT column whose value is each row's
document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .columns import InputColumn

__all__ = ["FILE_ID_PREFIX", "DocumentSettings", "Documents", "document_settings",
           "parse_document", "parse_documents_option"]

FILE_ID_PREFIX = "fileid://"
_FILE_ID = re.compile(r"^[^\s,]+$")
_EXAMPLE = ('\'fileid://file-fe-xxx\', \'fileid://file-fe-a,fileid://file-fe-b\', or a JSON array '
            'such as \'["fileid://file-fe-a", "inline document text"]\'')


@dataclass(frozen=True)
class Documents:
    """File ids and inline texts, in the order given."""

    file_ids: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()

    def __add__(self, other: Documents) -> Documents:
        return Documents(self.file_ids + other.file_ids, self.texts + other.texts)

    def __bool__(self) -> bool:
        return bool(self.file_ids or self.texts)

    def messages(self) -> list[dict[str, str]]:
        """The system messages: one with every file id, then one per inline text."""
        messages = []
        if self.file_ids:
            content = ",".join(FILE_ID_PREFIX + file_id for file_id in self.file_ids)
            messages.append({"role": "system", "content": content})
        messages.extend({"role": "system", "content": text} for text in self.texts)
        return messages


def parse_document(value: str) -> Documents:
    """One document value: ``fileid://`` references (comma-separated) or inline text.

    Raises:
        ValueError: an empty value, a ``fileid://`` with an empty (or blank-containing) id, or
            file ids mixed with text.

    Examples:
        >>> parse_document("fileid://a, fileid://b").file_ids
        ('a', 'b')
        >>> parse_document("Some text, with a comma.").texts
        ('Some text, with a comma.',)
    """
    if not value.strip():
        raise ValueError("a document must not be empty")
    if not value.lstrip().startswith(FILE_ID_PREFIX):
        return Documents(texts=(value,))
    ids = []
    for part in value.split(","):
        reference = part.strip()
        if not reference.startswith(FILE_ID_PREFIX):
            raise ValueError(f"'{value}' mixes fileid:// references with other text; give each "
                             "file id as fileid://<id>, or the text as a separate document")
        file_id = reference[len(FILE_ID_PREFIX):]
        if not file_id:
            raise ValueError(f"'{reference}' has an empty file id; write fileid://<id> with the "
                             "id that the upload printed (e.g. fileid://file-fe-xxx)")
        if not _FILE_ID.match(file_id):
            raise ValueError(f"'{reference}' is not a file id (no blanks or commas inside)")
        ids.append(file_id)
    return Documents(file_ids=tuple(ids))


def parse_documents_option(value: str) -> Documents:
    """The ``documents`` option: one document value, or a JSON array of them.

    Raises:
        ValueError: naming what is wrong and the accepted forms.
    """
    if not value.strip().startswith("["):
        return parse_document(value)
    try:
        given: Any = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"starts with '[' but is not a JSON array ({exc.msg} at character "
                         f"{exc.pos + 1}); give {_EXAMPLE}") from None
    if not isinstance(given, list) or not given or not all(isinstance(v, str) for v in given):
        raise ValueError(f"must be a non-empty JSON array of strings; give {_EXAMPLE}")
    documents = Documents()
    for item in given:
        documents += parse_document(item)
    return documents


@dataclass(frozen=True)
class DocumentSettings:
    """The documents of a chat model.

    Attributes:
        fixed: the documents of every row (the ``documents`` option).
        column: the INPUT position of ``document-column`` (None: no per-row document).
        column_name: that column's name, for messages.
    """

    fixed: Documents = Documents()
    column: int | None = None
    column_name: str | None = None

    def for_row(self, values: Sequence[Any]) -> tuple[Documents | None, tuple[Any, ...]]:
        """(the row's documents, the INPUT values that build the user message); the documents
        are None when the row's document column is null (the row is skipped).

        Raises:
            ValueError: the row's document value is malformed (e.g. ``fileid://`` alone).
        """
        if self.column is None:
            return self.fixed, tuple(values)
        value = values[self.column]
        rest = tuple(v for i, v in enumerate(values) if i != self.column)
        if value is None:
            return None, rest
        try:
            return self.fixed + parse_document(str(value)), rest
        except ValueError as exc:
            raise ValueError(f"document-column '{self.column_name}': {exc}") from None


def document_settings(fixed: Documents | None, column: str | None,
                      inputs: Sequence[InputColumn]) -> DocumentSettings | None:
    """The documents of a model from its ``documents`` and ``document-column`` values.

    Raises:
        ValueError: the column is not an INPUT column, not STRING, or the only INPUT column.
    """
    if fixed is None and column is None:
        return None
    if column is None:
        return DocumentSettings(fixed or Documents())
    names = [c.name for c in inputs]
    if column not in names:
        raise ValueError(f"'{column}' is not an INPUT column; INPUT columns: {', '.join(names)}")
    index = names.index(column)
    if not inputs[index].type.is_string:
        raise ValueError(f"INPUT column '{column}' is {inputs[index].type.sql()}; a document is "
                         "STRING (a fileid://... reference or inline text)")
    if len(inputs) == 1:
        raise ValueError(f"'{column}' is the only INPUT column; add one for the user message, "
                         "e.g. INPUT (`doc` STRING, `question` STRING)")
    return DocumentSettings(fixed or Documents(), index, column)
