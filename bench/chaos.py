"""Chaos run: a fault-mix job that proves no row is lost (RETRY) and every failed row is labelled
(IGNORE).

ROWS distinct rows (a bounded datagen sequence; text ``chaos-<id>``) go through ML_PREDICT to the
fault-injecting test server (``tests/fakes/openai_server.py``, in its OWN process by default so
that it does not compete with the driver for the GIL) with seeded random faults:

    10% 429 (half with Retry-After: 1), 5% 5xx (500/502/503), 2% timeouts (answers slower than
    the model's request-timeout), 1% TCP resets, 1% malformed JSON

The job runs twice, in batch mode on the embedded mini-cluster, writing JSON files with a
filesystem sink that are read back and counted exactly (no collect()):

* 'error-handling-strategy' = 'RETRY' (fallback FAILOVER: a row that cannot be answered fails
  the job, it cannot vanish): every id once, every answer correct;
* 'error-handling-strategy' = 'IGNORE' with the metadata columns: one attempt per row; the rows
  labelled with an error are exactly the rows whose only request got a fault in the server's log.

Prints the figures of each run (with the mean number of requests in flight, from the server's
log by Little's law) and a verdict; exits 1 when a check fails. ``--output-mode ALLOW_UNORDERED``
runs the same jobs in streaming mode on a StreamTableEnvironment (the unordered path).

    python bench/chaos.py                      # 10,000 rows, 64 in flight, seed 20240611
    python bench/chaos.py --rows 2000 --server-in-process
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "chaos-bench-key-0123456789"
PREFIX = "chaos-"

# The acceptance mix: 10% 429 (half with Retry-After), 5% 5xx, 2% timeouts, 1% resets, 1% malformed.
RATES = {
    "429": 0.05,
    "429-retry-after": 0.05,
    "500": 0.02,
    "502": 0.015,
    "503": 0.015,
    "timeout": 0.02,
    "reset": 0.01,
    "malformed-json": 0.01,
}
OUTPUT = ("`content` STRING, `error-string` STRING, `http-status-code` INT, "
          "`http-headers-map` MAP<STRING, ARRAY<STRING>>")


# --------------------------------------------------------------------------------------------
# The server: in its own process (default) or in this one
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    seed: int
    rates: dict[str, float]
    slow_delay: float
    retry_after: str
    latency: float


def _server_report(server: Any, idle: bool) -> dict[str, Any]:
    """What the analysis needs from the server: its log (key, outcome, status) and counts."""
    from tests.fakes.openai_server import request_key

    log = [(request_key(r.body), r.outcome, r.status) for r in server.requests
           if r.path.endswith("/chat/completions")]
    stats = server.stats()
    return {"idle": idle, "fault_counts": server.fault_counts(), "log": log,
            "requests": stats["requests"], "max_in_flight": stats["max_in_flight"],
            "span": (stats["last_end"] - stats["first_start"]) if stats["last_end"] else 0.0,
            # Little's law: the requests' summed time in the server over the span = the mean
            # number in flight.
            "busy": sum(r.ended - r.started for r in server.requests if r.ended is not None)}


def _start_fault_server(config: ServerConfig) -> Any:
    from tests.fakes.openai_server import FaultInjectingServer

    server = FaultInjectingServer(api_key=KEY, slow_delay=config.slow_delay,
                                  latency=config.latency)
    server.random_retry_after = config.retry_after
    server.set_random_faults(seed=config.seed, rates=config.rates)
    return server.start()


def _server_process(conn: Any, config: ServerConfig) -> None:
    """Body of the server process: serve, answer 'report' and 'stop' over the pipe."""
    server = _start_fault_server(config)
    conn.send(server.base_url)
    try:
        while True:
            command = conn.recv()
            if command == "report":
                idle = server.wait_idle(timeout=config.slow_delay + 30)
                conn.send(_server_report(server, idle))
            elif command == "stop":
                break
    finally:
        server.stop()
        conn.close()


class RemoteServer:
    """The fault-injecting server in a spawned process (not forked: no JVM state is copied)."""

    def __init__(self, config: ServerConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_server_process, args=(child, config),
                                        name="chaos-fault-server", daemon=True)
        self._process.start()
        child.close()
        self.base_url: str = self._conn.recv()

    def report(self) -> dict[str, Any]:
        self._conn.send("report")
        return self._conn.recv()

    def stop(self) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()


class LocalServer:
    """The fault-injecting server in a thread of this process."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._server = _start_fault_server(config)
        self.base_url: str = self._server.base_url

    def report(self) -> dict[str, Any]:
        idle = self._server.wait_idle(timeout=self._config.slow_delay + 30)
        return _server_report(self._server, idle)

    def stop(self) -> None:
        self._server.stop()


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def job_script(base_url: str, strategy: str, rows: int, concurrency: int, out_dir: Path, *,
               request_timeout: str, initial_backoff: str, max_backoff: str,
               output_mode: str = "ORDERED") -> str:
    return f"""
    CREATE TEMPORARY MODEL chaos_model INPUT (`input` STRING) OUTPUT ({OUTPUT}) WITH (
      'provider' = 'openai', 'endpoint' = '{base_url}/chat/completions',
      'api-key' = '{KEY}', 'model' = 'gpt-4o-mini',
      'error-handling-strategy' = '{strategy}',
      'request-timeout' = '{request_timeout}',
      'retry-initial-backoff' = '{initial_backoff}', 'retry-max-backoff' = '{max_backoff}');
    CREATE TEMPORARY TABLE chaos_gen (id BIGINT) WITH ('connector' = 'datagen',
      'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
      'number-of-rows' = '{rows}', 'rows-per-second' = '1000000');
    CREATE TEMPORARY VIEW chaos_src AS
      SELECT id, CONCAT('{PREFIX}', CAST(id AS STRING)) AS txt FROM chaos_gen;
    CREATE TEMPORARY TABLE chaos_sink (id BIGINT, txt STRING, {OUTPUT})
      WITH ('connector' = 'filesystem', 'path' = '{out_dir.as_uri()}', 'format' = 'json');
    INSERT INTO chaos_sink SELECT * FROM ML_PREDICT(TABLE chaos_src, MODEL chaos_model,
      DESCRIPTOR(txt), MAP['max-concurrent-operations', '{concurrency}',
                           'output-mode', '{output_mode}']);
    """


def read_sink(out_dir: Path) -> list[dict[str, Any]]:
    """Every row the filesystem sink wrote (hidden and in-progress files skipped)."""
    rows = []
    for path in sorted(out_dir.rglob("*")):
        if path.is_file() and not path.name.startswith((".", "_")):
            with path.open(encoding="utf-8") as lines:
                rows += [json.loads(line) for line in lines if line.strip()]
    return rows


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    strategy: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _status_of(outcome: str) -> int | None:
    """The HTTP status a client sees for a server outcome (``status:429`` -> 429, faults that
    end without a complete response -> None)."""
    return int(outcome.split(":", 1)[1]) if outcome.startswith("status:") else None


def analyse(strategy: str, rows_in: int, out: list[dict[str, Any]],
            server: dict[str, Any], seconds: float) -> RunResult:
    result = RunResult(strategy)
    f = result.figures
    expected = {i: f"{PREFIX}{i}" for i in range(1, rows_in + 1)}
    ids = collections.Counter(row["id"] for row in out)
    labelled = [row for row in out if row["error-string"] is not None]
    correct = [row for row in out if row["error-string"] is None and row["id"] in expected
               and row["txt"] == expected[row["id"]] and row["content"] == row["txt"]]
    attempts: dict[str, list[tuple[str, int | None]]] = collections.defaultdict(list)
    for key, outcome, status in server["log"]:
        attempts[key].append((outcome, status))
    oks = collections.Counter(key for key, outcome, _ in server["log"] if outcome == "ok")
    failed_for_good = {key for key, tries in attempts.items()
                       if all(outcome != "ok" for outcome, _ in tries)}

    f["rows in"] = rows_in
    f["rows out"] = len(out)
    f["distinct ids"] = len(ids)
    f["lost"] = len(expected.keys() - ids.keys())
    f["duplicated"] = sum(count - 1 for count in ids.values() if count > 1)
    f["unexpected ids"] = len(ids.keys() - expected.keys())
    f["correct answers"] = len(correct)
    f["labelled rows"] = len(labelled)
    f["server requests"] = server["requests"]
    f["server outcomes"] = dict(sorted(server["fault_counts"].items(),
                                       key=lambda item: (item[0] != "ok", -item[1])))
    f["rows seen by server"] = len(attempts)
    f["rows retried (>1 request)"] = sum(1 for tries in attempts.values() if len(tries) > 1)
    f["max requests for one row"] = max((len(t) for t in attempts.values()), default=0)
    f["rows answered ok more than once"] = sum(1 for count in oks.values() if count > 1)
    # Client-side timing seen from the server: a 'timeout' answer that the client still took
    # (its timer ran late on a busy event loop), and rows that never reached the server at all
    # (e.g. a connect that timed out on the client).
    by_text = {row["txt"]: row for row in out}
    late = {key for key, tries in attempts.items() if tries[-1][0] == "slow"
            and key in by_text and by_text[key]["error-string"] is None}
    f["late answers accepted"] = len(late)
    f["rows never seen by server"] = len(set(expected.values()) - attempts.keys())
    f["server max in flight"] = server["max_in_flight"]
    f["run time (s)"] = round(seconds, 1)
    f["request span (s)"] = round(server["span"], 1)
    f["mean requests in flight"] = round(server["busy"] / server["span"], 1) \
        if server["span"] else 0.0
    f["rows/s"] = round(rows_in / seconds, 1)

    def check(ok: bool, what: str) -> None:
        if not ok:
            result.failures.append(what)

    check(server["idle"], "the server still had requests in flight when reported")
    check(f["lost"] == 0, f"{f['lost']} rows lost")
    check(f["duplicated"] == 0, f"{f['duplicated']} rows duplicated")
    check(f["unexpected ids"] == 0, f"{f['unexpected ids']} unexpected ids")
    check(len(attempts) == rows_in, f"the server saw {len(attempts)} distinct rows, not {rows_in}")
    if strategy == "RETRY":
        check(f["correct answers"] == rows_in,
              f"{rows_in - f['correct answers']} rows without their correct answer")
        # A row's final answer is the server's one 'ok', or a 'timeout' answer the client
        # accepted anyway (the same correct text, only late).
        check(failed_for_good <= late,
              f"{len(failed_for_good - late)} rows never answered by the server")
        check(f["rows answered ok more than once"] == 0, "rows answered ok more than once")
    else:
        labelled_keys = {row["txt"] for row in labelled}
        f["failed for good (server log)"] = len(failed_for_good)
        f["labelled == failed for good"] = labelled_keys == failed_for_good
        f["labelled by status"] = dict(sorted(
            collections.Counter(str(row["http-status-code"]) for row in labelled).items()))
        f["failed for good by outcome"] = dict(sorted(
            collections.Counter(attempts[key][0][0] for key in failed_for_good).items()))
        unlabelled = [row for row in out if row["error-string"] is None]
        f["unlabelled rows correct"] = f"{len(correct)}/{len(unlabelled)}"
        check(f["rows retried (>1 request)"] == 0, "IGNORE sent more than one request for a row")
        check(len(labelled) == len(failed_for_good),
              f"labelled {len(labelled)} != failed for good {len(failed_for_good)}")
        check(labelled_keys == failed_for_good,
              f"labelled but not failed: {sorted(labelled_keys - failed_for_good)[:5]}; "
              f"failed but not labelled: {sorted(failed_for_good - labelled_keys)[:5]}")
        check(len(correct) == len(unlabelled),
              f"{len(unlabelled) - len(correct)} unlabelled rows with a wrong answer")
        # Each label carries the status the server really sent (none for timeouts, resets and
        # malformed bodies, which the client never saw a status for).
        mislabelled = [row["txt"] for row in labelled if row["content"] is not None
                       or row["txt"] not in attempts
                       or row["http-status-code"] != _status_of(attempts[row["txt"]][0][0])]
        f["labels with the server's status"] = f"{len(labelled) - len(mislabelled)}/{len(labelled)}"
        check(not mislabelled, f"labels that do not match the server's answer: {mislabelled[:5]}")
    return result


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def run(strategy: str, args: argparse.Namespace) -> RunResult:
    from flink_ml_predict import create_table_environment, execute_script

    config = ServerConfig(seed=args.seed, rates=RATES, slow_delay=args.slow_delay,
                          retry_after=args.retry_after, latency=args.latency)
    server = LocalServer(config) if args.server_in_process else RemoteServer(config)
    out_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{strategy.lower()}-"))
    try:
        if args.output_mode == "ALLOW_UNORDERED":  # needs a StreamTableEnvironment (streaming)
            t_env = create_table_environment(parallelism=args.parallelism, datastream=True)
        else:
            t_env = create_table_environment(batch=True, parallelism=args.parallelism)
        script = job_script(server.base_url, strategy, args.rows, args.concurrency,
                            out_dir / "sink", request_timeout=args.request_timeout,
                            initial_backoff=args.initial_backoff, max_backoff=args.max_backoff,
                            output_mode=args.output_mode)
        started = time.monotonic()
        execute_script(t_env, script)
        seconds = time.monotonic() - started
        report = server.report()
        out = read_sink(out_dir / "sink")
    finally:
        server.stop()
        shutil.rmtree(out_dir, ignore_errors=True)
    return analyse(strategy, args.rows, out, report, seconds)


def _print(result: RunResult) -> None:
    print(f"\n== error-handling-strategy {result.strategy} ==")
    width = max(len(name) for name in result.figures)
    for name, value in result.figures.items():
        print(f"  {name:<{width}}  {value}")
    verdict = "PASS" if not result.failures else "FAIL: " + "; ".join(result.failures)
    print(f"  {'verdict':<{width}}  {verdict}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="max-concurrent-operations")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--request-timeout", default="1s")
    parser.add_argument("--slow-delay", type=float, default=2.0,
                        help="seconds a 'timeout' fault waits before answering")
    parser.add_argument("--retry-after", default="1", help="Retry-After of half the 429s")
    parser.add_argument("--initial-backoff", default="100ms")
    parser.add_argument("--max-backoff", default="1s")
    parser.add_argument("--latency", type=float, default=0.0, help="server latency, seconds")
    parser.add_argument("--strategies", default="RETRY,IGNORE")
    parser.add_argument("--output-mode", default="ORDERED", choices=("ORDERED", "ALLOW_UNORDERED"),
                        help="ALLOW_UNORDERED runs in streaming mode on a StreamTableEnvironment")
    parser.add_argument("--server-in-process", action="store_true",
                        help="run the server in a thread of this process instead of its own")
    args = parser.parse_args()
    mix = ", ".join(f"{name} {rate:.1%}" for name, rate in RATES.items())
    mode = "batch mode" if args.output_mode == "ORDERED" else "streaming, ALLOW_UNORDERED"
    print(f"# chaos: {args.rows} rows, {args.concurrency} in flight, parallelism "
          f"{args.parallelism}, {mode}, filesystem JSON sink; server "
          f"{'in this process' if args.server_in_process else 'in its own process'}, seed "
          f"{args.seed}; faults: {mix} (total {sum(RATES.values()):.0%}); request-timeout "
          f"{args.request_timeout}, slow answers {args.slow_delay}s, Retry-After "
          f"{args.retry_after}s, backoff {args.initial_backoff}..{args.max_backoff}", flush=True)
    results = []
    for strategy in args.strategies.split(","):
        results.append(run(strategy.strip().upper(), args))
        _print(results[-1])
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
