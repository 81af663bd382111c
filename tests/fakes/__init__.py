"""Test doubles that are real servers: a fake OpenAI / DashScope-compatible HTTP server on
127.0.0.1 that tests (and ``bench/``) talk to with the real ``openai`` SDK and real Flink jobs.

Modules, one concern each:

* ``server.py`` -- :class:`~tests.fakes.server.FakeServer`: the HTTP/1.1 plumbing (threads,
  keep-alive, chunked request bodies, start/stop that wakes every waiting handler), the route
  table, the request log (:class:`~tests.fakes.exchange.RecordedRequest`, with the connection each
  request came on), latency and the api-key check. ``GET /_stats`` gives counts.
* ``gate.py`` -- requests in flight and the gate: ``hold(release_when=..., linger=...)``,
  ``release(n)``, ``wait_for_in_flight(n)``, ``wait_for_held(n)``, ``gate_expired``. Concurrency
  checks hold answers until the expected number of requests wait together instead of hoping a
  latency is long enough.
* ``exchange.py`` -- :class:`~tests.fakes.exchange.Exchange`: one request and the ways to answer
  it on the wire (JSON, bytes, server-sent events event by event, a cut connection, a TCP reset,
  no answer until the client leaves).
* ``answers.py`` -- normal OpenAI answers: chat completions (streamed too), embeddings (with
  DashScope's batch cap), the model list; the text comes from the product's rule-based demo
  answers (:mod:`flink_ml_predict.demo_answers`: the only product code the fakes use).
* ``faults.py`` -- :class:`~tests.fakes.faults.Fault` kinds, the appliers that put them on the
  wire, and :class:`~tests.fakes.faults.FaultPlan` (per-key scripts, always-faults, seeded rates).
* ``streaming.py`` -- DashScope-style chat answers, installed with ``streaming.install(server)``:
  tool calls for requests with ``tools``, streams as seed 004 shows them (``"finish_reason":
  "null"`` until the end, tool-call deltas, a usage chunk), and the stream faults it registers in
  ``faults.APPLIERS``: ``stream-stall`` (held until the client leaves), ``stream-no-done``,
  ``stream-bad-chunk``, ``stream-unfinished``.
* ``files.py`` -- :class:`~tests.fakes.files.FileStore` ``(server).install()``: multipart
  ``POST /files`` uploads (``file-extract``), ``GET /files/<id>``, and chat requests whose
  ``fileid://`` system messages must name known files (else 400), answered with the documents'
  names so rows show which document went with which question.
* ``structured.py`` -- :class:`~tests.fakes.structured.StructuredResponder`, the chat responder:
  JSON of the ``response_format`` schema a request carries (OpenAI's strict-mode checks, 400
  otherwise), ``json_object`` with the schema read from the system message, the formats received
  (``server.structured.received``) and scripted wrong answers per row
  (``server.structured.script(key, [WrongAnswer.missing("label"), None])``).
* ``ratelimit.py`` -- :class:`~tests.fakes.ratelimit.RequestRateLimit`: an RPM-limited mode
  (token bucket or fixed window) answering 429 with ``Retry-After``, ``retry-after-ms`` or no
  header; a fault source, installed first.
* ``batch_faults.py`` -- faults of whole embeddings batches decided on the body:
  :class:`~tests.fakes.batch_faults.RejectMarkedInputs` (400 for a batch with a marked input, as
  DashScope rejects a batch for one bad input) and ``FailFirstRequests``.
* ``openai_server.py`` -- :class:`~tests.fakes.openai_server.FaultInjectingServer`, what
  ``tests/conftest.py``'s ``server`` fixture gives: the routes, the fault sources, helpers to read
  the log (``fault_counts``, ``requests_for``, ``attempts``); ``python -m
  tests.fakes.openai_server`` serves it on its own.

Where the next pieces plug in (add a module; do not grow these):

* A new endpoint (e.g. a ``/files`` upload): ``server.add_route("POST", "/files", handler)`` with
  ``handler(exchange)``; a route added later wins over an earlier one for the same path, so a
  module can also replace ``/embeddings`` (per-input failures in an embedding batch: answer some
  inputs, fail others, through ``exchange.send_json``).
* SSE streaming with cut or stalled streams: ``exchange.start_events()``, ``send_event(...)``,
  ``exchange.pause(s)`` / ``wait_for_disconnect()``, ``cut()``, ``end_events()``; register a new
  fault kind in ``faults.APPLIERS`` (``kind -> applier(exchange, fault, answer)``) and
  ``Fault(kind)`` accepts it.
* A fault decided on the request (a rate limit, a batch's inputs): a callable
  ``RecordedRequest -> Fault | None`` inserted at the front of
  ``FaultInjectingServer.fault_sources`` (as ``ratelimit.py`` and ``batch_faults.py`` do).
* Another way of answering chat requests: a ``responder(body) -> str | list[str]`` (the
  server's ``responder`` argument or attribute; ``structured.py`` is the default one).
"""
