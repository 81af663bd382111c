"""The benchmark suite behind ``make bench``: one table a user can read, in a few minutes.

Every case runs against the tests' fake OpenAI-compatible server in its own process (fixed
latency; for the throttled cases a requests-per-minute limit that answers 429 with Retry-After),
a fresh server per case, on the embedded mini-cluster at parallelism 1, into a blackhole sink:

* chat: the plain ``asyncio`` + ``openai`` loop (the ceiling; also with the SDK's aiohttp
  transport, which the package uses) against the Flink job, at a few
  latency / concurrency points (bench/chat_throughput.py, steady-state rows/s and CPU ms per row);
* embeddings: one request per row (``'batch-size' = '1'``) against the default batching
  (DashScope's cap, 10 rows a request): rows/s and requests per row;
* throttled: a server limited to RPM requests a minute, without and with
  ``'requests-per-minute'``: requests sent, 429s answered, rows/s.

    flock /work/flink.lock python bench/suite.py            # the short suite (a few minutes)
    flock /work/flink.lock python bench/suite.py --full     # latencies 50/100/500 ms x 16/64/256

Figures depend on the machine and its load; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "bench-key"
SHORT_POINTS = [(0.1, 64, 3000), (0.05, 16, 1500)]
FULL_POINTS = [(latency, concurrency, max(1000, min(10000, int(concurrency / latency * 8))))
               for latency in (0.05, 0.1, 0.5) for concurrency in (16, 64, 256)]


def start_server(latency: float, rpm: float | None = None) -> tuple[subprocess.Popen, int]:
    """The fake server in its own process; (process, port)."""
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--api-key", KEY,
               "--latency", str(latency)]
    if rpm is not None:
        command += ["--rpm", str(rpm)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().split(" on ", 1)[1].strip()  # the start-up line: bound
    return process, int(url.rsplit(":", 1)[1])


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait()


def server_stats(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_stats",
                                     headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def chat_point(latency: float, concurrency: int, rows: int) -> list[list[str]]:
    """Table rows of one latency / concurrency point: the loop and the job."""
    command = [sys.executable, str(ROOT / "bench" / "chat_throughput.py"), "--rows", str(rows),
               "--latency", str(latency), "--concurrency", str(concurrency),
               "--contenders", "loop,loop-aiohttp,job-p1", "--repeats", "1"]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    runs = {}
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) == 6 and fields[0] == "1":
            runs[fields[1]] = (float(fields[2]), fields[5].split("/")[3])
    loop, aio, job = runs["loop"], runs["loop-aiohttp"], runs["job-p1"]
    case = f"{latency * 1000:.0f} ms, {concurrency} in flight, {rows} rows"
    ideal = concurrency / latency
    return [["chat", case, "plain asyncio+openai loop", f"{loop[0]:.0f}", f"ideal {ideal:.0f}",
             f"cpu {loop[1]} ms/row"],
            ["chat", case, "same loop, aiohttp transport", f"{aio[0]:.0f}", "",
             f"cpu {aio[1]} ms/row"],
            ["chat", case, "Flink job (ML_PREDICT)", f"{job[0]:.0f}",
             f"x loop {job[0] / loop[0]:.2f}, x aiohttp loop {job[0] / aio[0]:.2f}",
             f"cpu {job[1]} ms/row"]]


def run_job(port: int, model_sql: str, rows: int, concurrency: int, output: str) -> float:
    """Runs one ML_PREDICT job to its end; the seconds from submission to the end."""
    from flink_ml_predict import create_table_environment, execute_script

    t_env = create_table_environment(parallelism=1)
    script = f"""
    {model_sql};
    CREATE TEMPORARY TABLE gen (id BIGINT) WITH ('connector' = 'datagen',
      'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
      'rows-per-second' = '1000000');
    CREATE TEMPORARY VIEW src AS SELECT id, CONCAT('row ', CAST(id AS STRING)) AS txt FROM gen;
    CREATE TEMPORARY TABLE sink (id BIGINT, txt STRING, {output})
      WITH ('connector' = 'blackhole');
    INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt),
      MAP['max-concurrent-operations', '{concurrency}']);
    """
    started = time.monotonic()
    execute_script(t_env, script)
    return time.monotonic() - started


def _span_rate(stats: dict, rows: int) -> float:
    span = (stats["last_end"] or 0) - (stats["first_start"] or 0)
    return rows / span if span > 0 else float("nan")


def embeddings(rows: int, concurrency: int, latency: float) -> list[list[str]]:
    """Table rows: one request per row against the default batching."""
    table = []
    for label, extra in (("one request a row ('batch-size' = '1')", ", 'batch-size' = '1'"),
                         ("batched (default: up to 10 rows a request)", "")):
        server, port = start_server(latency)
        try:
            model = (f"CREATE TEMPORARY MODEL m INPUT (`input` STRING) OUTPUT (`embedding` "
                     f"ARRAY<FLOAT>) WITH ('provider' = 'qwen', 'endpoint' = "
                     f"'http://127.0.0.1:{port}/compatible-mode/v1', 'api-key' = '{KEY}', "
                     f"'model' = 'text-embedding-v4', 'dimension' = '8'{extra})")
            run_job(port, model, rows, concurrency, "embedding ARRAY<FLOAT>")
            stats = server_stats(port)
        finally:
            stop_server(server)
        table.append(["embeddings", f"{latency * 1000:.0f} ms, {concurrency} in flight, "
                      f"{rows} rows", label, f"{_span_rate(stats, rows):.0f}",
                      f"{stats['requests'] / rows:.2f} requests/row", ""])
    return table


def throttled(rows: int, concurrency: int, rpm: int) -> list[list[str]]:
    """Table rows: a server limited to ``rpm``, without and with 'requests-per-minute'."""
    table = []
    limit = f"'requests-per-minute' = '{rpm}'"
    for label, extra in (("no client limit (shared cooldown only)", ""), (limit, f", {limit}")):
        server, port = start_server(0.02, rpm=rpm)
        try:
            model = (f"CREATE TEMPORARY MODEL m INPUT (`input` STRING) OUTPUT (`content` STRING) "
                     f"WITH ('provider' = 'openai', 'endpoint' = 'http://127.0.0.1:{port}/v1', "
                     f"'api-key' = '{KEY}', 'model' = 'bench'{extra})")
            seconds = run_job(port, model, rows, concurrency, "content STRING")
            stats = server_stats(port)
        finally:
            stop_server(server)
        rejected = stats["outcomes"].get("status:429", 0)
        table.append(["throttled", f"server {rpm}/min, {concurrency} in flight, {rows} rows",
                      label, f"{_span_rate(stats, rows):.1f}",
                      f"{stats['requests']} requests, {rejected} x 429", f"job {seconds:.0f} s"])
    return table


def print_table(rows: list[list[str]]) -> None:
    header = ["what", "case", "contender", "rows/s", "", ""]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="chat at 50/100/500 ms x 16/64/256 in flight (long)")
    parser.add_argument("--only", choices=("chat", "embeddings", "throttled"), default=None)
    args = parser.parse_args()
    started = time.monotonic()
    table: list[list[str]] = []
    if args.only in (None, "chat"):
        for latency, concurrency, rows in FULL_POINTS if args.full else SHORT_POINTS:
            table += chat_point(latency, concurrency, rows)
            print(f"# chat {latency}s x {concurrency}: done", file=sys.stderr, flush=True)
    if args.only in (None, "embeddings"):
        table += embeddings(rows=2000, concurrency=64, latency=0.05)
        print("# embeddings: done", file=sys.stderr, flush=True)
    if args.only in (None, "throttled"):
        table += throttled(rows=200, concurrency=16, rpm=1200)
    print()
    print_table(table)
    print(f"\n# {time.monotonic() - started:.0f} s in all; parallelism 1, embedded mini-cluster; "
          "rows/s: chat in the steady window (10%-90% of the rows), others over the server's "
          "first to last request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
