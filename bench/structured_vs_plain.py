"""Throughput of a structured model next to a plain one, in the same run and at the same latency.

Both jobs send ROWS chat requests to the tests' fake server (its own process, fixed latency, a
fresh process per job) with CONCURRENCY requests in flight: a datagen sequence through ML_PREDICT
into a blackhole sink (no collect()), on one mini-cluster (one JVM, parallelism 1). The plain model
has OUTPUT (content STRING); the structured one OUTPUT (label STRING COMMENT ..., confidence
DOUBLE, keywords ARRAY<STRING>, `prompt-tokens` INT): response_format json_schema in every request,
each answer validated by pydantic and converted to the column types. The jobs alternate
(plain, structured, plain, ...) --repeat times. Prints one CSV line per job:
what,rows,seconds,rows_per_s,requests,requests_span_s,span_rows_per_s,max_in_flight (the
requests' span, first request to last answer, leaves out the job's start-up).

    python bench/structured_vs_plain.py --rows 2000 --latency 0.1 --concurrency 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat_throughput import KEY, _start_server, _stats  # noqa: E402

OUTPUTS = {
    "plain": "`content` STRING",
    "structured": ("label STRING COMMENT 'positive, negative, neutral or mixed', "
                   "confidence DOUBLE, keywords ARRAY<STRING>, `prompt-tokens` INT"),
}
SINKS = {
    "plain": "content STRING",
    "structured": "label STRING, confidence DOUBLE, keywords ARRAY<STRING>, tokens INT",
}


def run_job(t_env, kind: str, port: int, rows: int, concurrency: int) -> float:
    """Seconds from submission to the end of one job."""
    from flink_ml_predict import execute_script

    model = f"m_{kind}_{time.monotonic_ns()}"
    script = f"""
    CREATE TEMPORARY MODEL {model} INPUT (`input` STRING) OUTPUT ({OUTPUTS[kind]}) WITH (
      'provider' = 'openai', 'endpoint' = 'http://127.0.0.1:{port}/v1/chat/completions',
      'api-key' = '{KEY}', 'model' = 'bench',
      'system-prompt' = 'Extract the sentiment, a confidence and keywords.');
    CREATE TEMPORARY TABLE IF NOT EXISTS gen (id BIGINT) WITH ('connector' = 'datagen',
      'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
      'rows-per-second' = '1000000');
    CREATE TEMPORARY VIEW IF NOT EXISTS src AS
      SELECT id, CONCAT('a great film, row ', CAST(id AS STRING)) AS txt FROM gen;
    CREATE TEMPORARY TABLE IF NOT EXISTS sink_{kind} (id BIGINT, txt STRING, {SINKS[kind]})
      WITH ('connector' = 'blackhole');
    INSERT INTO sink_{kind} SELECT * FROM ML_PREDICT(TABLE src, MODEL {model},
      DESCRIPTOR(txt), MAP['max-concurrent-operations', '{concurrency}']);
    """
    started = time.monotonic()
    execute_script(t_env, script)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="plain/structured pairs to run")
    args = parser.parse_args()

    from flink_ml_predict import create_table_environment

    ideal = args.rows * args.latency / args.concurrency
    print(f"# {args.rows} rows, {args.latency * 1000:.0f} ms latency, {args.concurrency} in "
          f"flight, parallelism 1; ideal {ideal:.1f}s ({args.rows / ideal:.0f} rows/s)")
    print("what,rows,seconds,rows_per_s,requests,requests_span_s,span_rows_per_s,max_in_flight")
    t_env = create_table_environment(parallelism=1)
    for _ in range(args.repeat):
        for kind in ("plain", "structured"):
            server, port = _start_server(args.latency)
            try:
                total = run_job(t_env, kind, port, args.rows, args.concurrency)
                stats = _stats(port)
            finally:
                server.terminate()
                server.wait()
            span = stats["last_end"] - stats["first_start"]
            bad = {k: v for k, v in stats["outcomes"].items() if k != "ok"}
            if stats["requests"] != args.rows or bad:
                print(f"# {kind}: {stats['requests']} requests, outcomes {stats['outcomes']}")
            print(f"{kind},{args.rows},{total:.2f},{args.rows / total:.0f},{stats['requests']},"
                  f"{span:.2f},{stats['requests'] / span:.0f},{stats['max_in_flight']}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
