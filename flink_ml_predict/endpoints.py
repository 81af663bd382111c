"""Endpoint paths of APIs that flink_ml_predict does not call, recognised in CREATE MODEL's
'endpoint' before any request is sent.

The package speaks two OpenAI-compatible APIs: chat completions and embeddings. An 'endpoint' is
their base URL (``https://api.openai.com/v1``) or a full URL ending in ``/chat/completions`` or
``/embeddings``. Any other URL is taken as a base URL, so one ending in another API's path would
send requests to ``<that path>/chat/completions`` and fail at run time with a 404. These are
rejected instead, with the URL to use:

==================================================  =============================================
path (after a first segment such as ``/v1``)         API
==================================================  =============================================
``/completions`` (not ``/chat/completions``)        OpenAI's legacy Completions API
``/responses[/...]``                                OpenAI's Responses API
``/audio/...``, ``/images/...``                     OpenAI's Audio and Images APIs
``/files[/...]``, ``/uploads/...``                  the Files and Uploads APIs
``/models[/...]``                                   the model list
``/moderations``, ``/batches[/...]``,               other OpenAI APIs
``/fine_tuning/...``, ``/assistants[/...]``,
``/threads/...``, ``/vector_stores/...``,
``/realtime[/...]``
``/api/v1/services/...``, ``/api/v1/apps/...``      DashScope's native API (use compatible mode)
``/api/generate``, ``/api/chat``, ``/api/embed``,    Ollama's native API (use ``/v1``)
``/api/embeddings``
==================================================  =============================================

An API's segment counts only after a first segment (``/v1/models``, not ``/models``): Azure AI's
model inference base URL is ``https://<resource>.services.ai.azure.com/models``.
"""

from __future__ import annotations

from urllib.parse import ParseResult

# segment -> (what it is, how many further segments may follow it at the end of the path)
FOREIGN_APIS: dict[str, tuple[str, int]] = {
    "completions": ("OpenAI's legacy Completions API", 0),
    "responses": ("OpenAI's Responses API", 1),
    "audio": ("OpenAI's Audio API", 1),
    "images": ("OpenAI's Images API", 1),
    "files": ("the Files API", 2),
    "uploads": ("the Uploads API", 2),
    "models": ("the model list API", 1),
    "moderations": ("OpenAI's Moderations API", 0),
    "batches": ("the Batch API", 2),
    "fine_tuning": ("OpenAI's Fine-tuning API", 3),
    "assistants": ("OpenAI's Assistants API", 1),
    "threads": ("OpenAI's Assistants (threads) API", 3),
    "vector_stores": ("OpenAI's Vector Stores API", 3),
    "realtime": ("OpenAI's Realtime API", 1),
}
DASHSCOPE_NATIVE = (("api", "v1", "services"), ("api", "v1", "apps"))
OLLAMA_NATIVE = frozenset({"generate", "chat", "embed", "embeddings"})
CALLED = "/chat/completions or /embeddings"


def foreign_api(url: ParseResult) -> str | None:
    """Why this endpoint URL names an API we do not call, and what to give instead; None when
    it is a base URL or a chat completions / embeddings URL."""
    segments = [s for s in url.path.split("/") if s]
    origin = f"{url.scheme}://{url.netloc}"
    if tuple(segments[:3]) in DASHSCOPE_NATIVE:
        return (f"is DashScope's native API, which flink_ml_predict does not call; give the "
                f"OpenAI-compatible endpoint {origin}/compatible-mode/v1 (or it followed by "
                f"{CALLED})")
    if len(segments) == 2 and segments[0] == "api" and segments[1] in OLLAMA_NATIVE:
        return (f"is Ollama's native API, which flink_ml_predict does not call; give the "
                f"OpenAI-compatible endpoint {origin}/v1 (or it followed by {CALLED})")
    for index, segment in enumerate(segments[1:], start=1):
        found = FOREIGN_APIS.get(segment)
        if found is None or len(segments) - 1 - index > found[1]:
            continue
        if segment == "completions" and segments[index - 1] == "chat":
            continue
        base = origin + "/" + "/".join(segments[:index])
        return (f"ends in /{'/'.join(segments[index:])}, {found[0]}, which flink_ml_predict does "
                f"not call; give the base URL {base} or a full URL ending in {CALLED} (e.g. "
                f"{base}/chat/completions)")
    return None
