"""Chat throughput: a Flink job with ML_PREDICT vs a plain asyncio + openai loop.

Both send ROWS chat requests to the tests' fake server (its own process, fixed latency) with
CONCURRENCY requests in flight. The Flink job reads a datagen sequence and writes to a blackhole
sink (no collect()). Prints one CSV line per run: what,rows,seconds,rows_per_s,max_in_flight.

    python bench/chat_throughput.py --rows 5000 --latency 0.1 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "bench-key"


def _start_server(latency: float) -> tuple[subprocess.Popen, int]:
    """The fake server in its own process; (process, port)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--api-key", KEY,
         "--latency", str(latency)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().split(" on ", 1)[1].strip()  # the start-up line: bound
    return process, int(url.rsplit(":", 1)[1])


def _stats(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_stats",
                                     headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def run_flink(port: int, rows: int, concurrency: int) -> tuple[float, float]:
    """(seconds from submission to the end of the job, seconds from first to last request)."""
    from flink_ml_predict import create_table_environment, execute_script

    t_env = create_table_environment(parallelism=1)
    script = f"""
    CREATE TEMPORARY MODEL m INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (
      'provider' = 'openai', 'endpoint' = 'http://127.0.0.1:{port}/v1/chat/completions',
      'api-key' = '{KEY}', 'model' = 'bench');
    CREATE TEMPORARY TABLE gen (id BIGINT) WITH ('connector' = 'datagen',
      'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
      'rows-per-second' = '1000000');
    CREATE TEMPORARY VIEW src AS SELECT id, CONCAT('row ', CAST(id AS STRING)) AS txt FROM gen;
    CREATE TEMPORARY TABLE sink (id BIGINT, txt STRING, content STRING)
      WITH ('connector' = 'blackhole');
    INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt),
      MAP['max-concurrent-operations', '{concurrency}']);
    """
    started = time.monotonic()
    execute_script(t_env, script)
    total = time.monotonic() - started
    stats = _stats(port)
    return total, stats["last_end"] - stats["first_start"]


def run_plain(port: int, rows: int, concurrency: int) -> float:
    """Seconds for the same requests through AsyncOpenAI and a semaphore."""
    import openai

    async def main() -> float:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1",
                                    max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str | None:
            async with gate:
                messages = [{"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": f"row {i}"}]
                response = await client.chat.completions.create(model="bench", messages=messages)
                return response.choices[0].message.content

        started = time.monotonic()
        answers = await asyncio.gather(*(one(i) for i in range(1, rows + 1)))
        elapsed = time.monotonic() - started
        assert answers == [f"row {i}" for i in range(1, rows + 1)]
        await client.close()
        return elapsed

    return asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    ideal = args.rows * args.latency / args.concurrency
    limit = f"ideal {ideal:.1f}s ({args.rows / ideal:.0f} rows/s)" if ideal else "no latency"
    print(f"# {args.rows} rows, {args.latency * 1000:.0f} ms latency, {args.concurrency} in flight;"
          f" {limit}")
    print("what,rows,seconds,rows_per_s,max_in_flight")
    server, port = _start_server(args.latency)
    try:
        total, span = run_flink(port, args.rows, args.concurrency)
        stats = _stats(port)
        print(f"flink_job_total,{args.rows},{total:.2f},{args.rows / total:.0f},"
              f"{stats['max_in_flight']}")
        print(f"flink_job_requests_span,{stats['requests']},{span:.2f},"
              f"{stats['requests'] / span:.0f},{stats['max_in_flight']}")
    finally:
        server.terminate()
        server.wait()
    server, port = _start_server(args.latency)
    try:
        plain = run_plain(port, args.rows, args.concurrency)
        stats = _stats(port)
        print(f"plain_asyncio_openai,{args.rows},{plain:.2f},{args.rows / plain:.0f},"
              f"{stats['max_in_flight']}")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
