"""The benchmark suite behind ``make bench``: one table a user can read, in a few minutes.

Every case runs against the tests' fake OpenAI-compatible server in its own process (fixed
latency; for the throttled cases a requests-per-minute limit that answers 429 with Retry-After),
a fresh server per case, on the embedded mini-cluster at parallelism 1, into a blackhole sink:

* chat: the plain ``asyncio`` + ``openai`` loop (the ceiling; also with the SDK's aiohttp
  transport, which the package uses) against the Flink job and against the job with
  ``'async' = 'false'`` (the naive synchronous UDF: one request at a time, so it gets fewer rows),
  at a few latency / concurrency points (bench/chat_throughput.py, steady-state rows/s and CPU ms
  per row); a PNG plot of rows/s against concurrency with the ideal, concurrency / latency
  (bench/plot.py, needs ``pip install -e '.[bench]'``), written to ``--plot``;
* embeddings: one request per row (``'batch-size' = '1'``) against the default batching
  (DashScope's cap, 10 rows a request): rows/s and requests per row;
* throttled: a server limited to RPM requests a minute, without and with
  ``'requests-per-minute'``: requests sent, 429s answered, rows/s;
* ``--p2`` (and ``--full``): the job at parallelism 2 with its Python worker in the client process
  ("loopback") and in a worker process per instance ("process"), against the loop, 2 rounds;
* ``--rss``: the worker's RSS every 100,000 of 1,000,000 rows at 0 ms (bench/rss.py; long).

    flock /work/flink.lock python bench/suite.py            # the short suite (a few minutes)
    flock /work/flink.lock python bench/suite.py --full     # latencies 50/100/500 ms x 16/64/256
    flock /work/flink.lock python bench/suite.py --only rss --rss

Figures depend on the machine and its load; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.plot import Point, plot_throughput  # noqa: E402

KEY = "bench-key"
PLAIN, AIOHTTP = "plain asyncio+openai loop", "loop, aiohttp transport"
JOB, SYNC = "Flink job (ML_PREDICT)", "Flink job, 'async' = 'false'"
SECTIONS = ("chat", "p2", "embeddings", "throttled", "rss")
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


def _throughput(contenders: str, latency: float, concurrency: int, rows: int,
                repeats: int = 1) -> dict[str, list[tuple[int, float, str]]]:
    """bench/chat_throughput.py's runs: contender -> [(round, rows/s, total CPU ms/row)]."""
    command = [sys.executable, str(ROOT / "bench" / "chat_throughput.py"), "--rows", str(rows),
               "--latency", str(latency), "--concurrency", str(concurrency),
               "--contenders", contenders, "--repeats", str(repeats)]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    runs: dict[str, list[tuple[int, float, str]]] = {}
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) == 6 and fields[0].isdigit():
            runs.setdefault(fields[1], []).append(
                (int(fields[0]), float(fields[2]), fields[5].split("/")[3]))
    return runs


def sync_rows(latency: float) -> int:
    """Rows for the synchronous UDF (one request at a time): about 12 s of requests."""
    return max(40, round(12 / latency))


def chat_point(latency: float, concurrency: int, rows: int,
               points: list[Point]) -> list[list[str]]:
    """Table rows of one latency / concurrency point: the loops, the job, the synchronous job."""
    runs = _throughput("loop,loop-aiohttp,job-p1", latency, concurrency, rows)
    sync_count = sync_rows(latency)
    runs.update(_throughput("job-p1-sync", latency, concurrency, sync_count))
    (_, loop, loop_cpu), = runs["loop"]
    (_, aio, aio_cpu), = runs["loop-aiohttp"]
    (_, job, job_cpu), = runs["job-p1"]
    (_, sync, sync_cpu), = runs["job-p1-sync"]
    for contender, rate in ((PLAIN, loop), (AIOHTTP, aio), (JOB, job), (SYNC, sync)):
        points.append(Point(contender=contender, latency=latency, concurrency=concurrency,
                            rows_per_s=rate))
    case = f"{latency * 1000:.0f} ms, {concurrency} in flight, {rows} rows"
    ideal = concurrency / latency
    return [["chat", case, PLAIN, f"{loop:.0f}", f"ideal {ideal:.0f}", f"cpu {loop_cpu} ms/row"],
            ["chat", case, AIOHTTP, f"{aio:.0f}", "", f"cpu {aio_cpu} ms/row"],
            ["chat", case, JOB, f"{job:.0f}",
             f"x loop {job / loop:.2f}, x aiohttp loop {job / aio:.2f}, x sync UDF "
             f"{job / sync:.1f}", f"cpu {job_cpu} ms/row"],
            ["chat", case, SYNC, f"{sync:.1f}", f"x loop {sync / loop:.3f} ({sync_count} rows, "
             "1 in flight)", f"cpu {sync_cpu} ms/row"]]


def parallelism2(latency: float, concurrency: int, rows: int, repeats: int) -> list[list[str]]:
    """Table rows: the job at parallelism 2, loopback vs process mode, against the loop (the
    same CONCURRENCY in flight in all: half of it per parallel instance)."""
    contenders = ["loop", "job-p1", "job-p2-loopback", "job-p2-process"]
    runs = _throughput(",".join(contenders), latency, concurrency, rows, repeats)
    loops = {round_no: rate for round_no, rate, _ in runs["loop"]}
    case = f"{latency * 1000:.0f} ms, {concurrency} in flight, {rows} rows, {repeats} rounds"
    labels = {"loop": PLAIN, "job-p1": "job, parallelism 1 (loopback)",
              "job-p2-loopback": "job, parallelism 2, loopback",
              "job-p2-process": "job, parallelism 2, process mode"}
    table = []
    for contender in contenders:
        rates = [rate for _, rate, _ in runs[contender]]
        cpu = statistics.median(float(c) for _, _, c in runs[contender])
        ratios = [rate / loops[r] for r, rate, _ in runs[contender] if r in loops]
        note = (f"ideal {concurrency / latency:.0f}" if contender == "loop" else
                "x loop " + " / ".join(f"{x:.2f}" for x in ratios) + " (per round)")
        table.append(["parallelism", case, labels[contender],
                      f"{statistics.median(rates):.0f}", note, f"cpu {cpu:.2f} ms/row"])
    return table


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
                      f"{stats['requests']} requests, {rejected} x 429, at most "
                      f"{stats['max_requests_per_body']} for a row", f"job {seconds:.0f} s"])
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
                        help="chat at 50/100/500 ms x 16/64/256 in flight, and --p2 (long)")
    parser.add_argument("--p2", action="store_true",
                        help="also the job at parallelism 2, loopback vs process mode")
    parser.add_argument("--rss", action="store_true",
                        help="also the worker's RSS over --rss-rows rows at 0 ms (bench/rss.py)")
    parser.add_argument("--rss-rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=SECTIONS, default=None, help="only this section")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "throughput.png",
                        help="where the PNG goes (default: %(default)s)")
    args = parser.parse_args()
    sections = {"chat", "embeddings", "throttled"}
    sections |= {"p2"} if args.full or args.p2 else set()
    sections |= {"rss"} if args.rss else set()
    if args.only:
        sections = {args.only}
    started = time.monotonic()
    table: list[list[str]] = []
    points: list[Point] = []
    if "chat" in sections:
        for latency, concurrency, rows in FULL_POINTS if args.full else SHORT_POINTS:
            table += chat_point(latency, concurrency, rows, points)
            print(f"# chat {latency}s x {concurrency}: done", file=sys.stderr, flush=True)
    if "p2" in sections:
        table += parallelism2(latency=0.1, concurrency=64, rows=3000, repeats=2)
        print("# parallelism 2: done", file=sys.stderr, flush=True)
    if "embeddings" in sections:
        table += embeddings(rows=2000, concurrency=64, latency=0.05)
        print("# embeddings: done", file=sys.stderr, flush=True)
    if "throttled" in sections:
        table += throttled(rows=200, concurrency=16, rpm=1200)
        if args.full:  # the case: 300 rows against 120 requests a minute (minutes)
            table += throttled(rows=300, concurrency=16, rpm=120)
    if table:
        print()
        print_table(table)
    plot = plot_throughput(points, args.plot, "chat rows/s against requests in flight "
                           "(parallelism 1, embedded mini-cluster, fake server)")
    if "rss" in sections:
        print(f"\n# worker RSS over {args.rss_rows} rows at 0 ms latency", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "rss.py"), "--rows",
                        str(args.rss_rows), "--every", str(max(1, args.rss_rows // 10))],
                       cwd=ROOT, check=True)
    print(f"\n# {time.monotonic() - started:.0f} s in all; embedded mini-cluster; rows/s: chat "
          "in the steady window (10%-90% of the rows), others over the server's first to last "
          "request")
    if plot is not None:
        print(f"# plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
