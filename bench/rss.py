"""Memory over a long run: the RSS of the job's Python worker every N rows.

A bounded datagen sequence of ROWS rows -> ML_PREDICT (chat) -> blackhole sink, at parallelism 1
on the embedded mini-cluster, against a minimal OpenAI-compatible server with no latency (its own
process: aiohttp, a constant answer, a count of answered requests and nothing else kept, so that a
million requests cost it little CPU and no memory). In loopback mode the Python worker runs in the
job's client process, so that process's RSS is the worker's. Every EVERY rows (by the server's
count) it prints the worker's current RSS and its peak so far (``VmHWM``), and the JVM's RSS.

    flock /work/flink.lock python bench/rss.py --rows 1000000 --every 100000

Figures are printed, never asserted.
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

from bench.steady import process_tree  # noqa: E402

KEY = "bench-key"
_ANSWER = json.dumps({
    "id": "chatcmpl-rss", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()


def serve(port: int) -> None:
    """The minimal server, until SIGTERM; the first line on stdout gives its port."""
    from aiohttp import web

    answered = 0

    async def chat(request: web.Request) -> web.Response:
        nonlocal answered
        await request.read()
        answered += 1
        return web.Response(body=_ANSWER, content_type="application/json")

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"completed": answered})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/_count", count)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"rss server on http://127.0.0.1:{bound}", flush=True)
        while True:
            await asyncio.sleep(3600)

    asyncio.run(main())


def run_job(port: int, rows: int, concurrency: int) -> None:
    """The job, until it has finished."""
    from flink_ml_predict import create_table_environment, execute_script

    t_env = create_table_environment(parallelism=1)
    execute_script(t_env, f"""
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
    """)


def _status_kb(pid: int, field: str) -> int:
    """A ``VmRSS`` / ``VmHWM`` line of /proc/<pid>/status, in kB (0: gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _completed(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_count", timeout=10) as response:
        return int(json.load(response)["completed"])


def _stop(pid: int) -> None:
    """Ends the job: its client, its JVM and the JVM's workers (PyFlink's gateway JVM does not
    always end with its client)."""
    import os
    import signal

    pids = [p for p, _, _ in process_tree(pid)]
    for target in pids:
        try:
            os.kill(target, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids[1:]):
        time.sleep(0.2)
    for target in pids[1:]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def measure(rows: int, every: int, concurrency: int,
            max_seconds: float | None = None) -> list[dict]:
    """Runs the job; one record per EVERY rows (and one at the end). With ``max_seconds`` the
    job is stopped after that long (the records so far stand)."""
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    records: list[dict] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
        started = time.monotonic()
        job = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--run-job",
                                "--port", str(port), "--rows", str(rows),
                                "--concurrency", str(concurrency)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
        print("rows,seconds,rows_per_s_since_last,worker_rss_mb,worker_peak_rss_mb,jvm_rss_mb",
              flush=True)
        mark, last = every, (started, 0)
        while True:
            finished = job.poll() is not None
            done = _completed(port)
            jvm = [pid for pid, kind, _ in process_tree(job.pid) if kind == "jvm"]
            if done >= mark or (finished and done > last[1]):
                now = time.monotonic()
                record = {"rows": done, "seconds": now - started,
                          "rate": (done - last[1]) / max(now - last[0], 1e-9),
                          "rss": _status_kb(job.pid, "VmRSS") / 1024,
                          "peak": _status_kb(job.pid, "VmHWM") / 1024,
                          "jvm": sum(_status_kb(pid, "VmRSS") for pid in jvm) / 1024}
                if record["rss"] > 0:  # the process may have ended between poll() and here
                    records.append(record)
                    print(f"{done},{record['seconds']:.0f},{record['rate']:.0f},"
                          f"{record['rss']:.0f},{record['peak']:.0f},{record['jvm']:.0f}",
                          flush=True)
                last = (now, done)
                while mark <= done:
                    mark += every
            if finished:
                break
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                print(f"# stopped after {max_seconds:.0f} s at {done} rows (--max-seconds)",
                      flush=True)
                _stop(job.pid)
                job.wait()
                return records
            time.sleep(0.2)
        stderr = job.stderr.read() if job.stderr else ""
        if job.returncode != 0:
            raise SystemExit(f"the job failed ({job.returncode}):\n{stderr[-3000:]}")
    finally:
        server.terminate()
        server.wait()
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop the job after this long (the figures so far stand)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
    elif args.run_job:
        run_job(args.port, args.rows, args.concurrency)
    else:
        records = measure(args.rows, args.every, args.concurrency, args.max_seconds)
        if records:
            first, end = records[0], records[-1]
            print(f"# worker RSS {first['rss']:.0f} MB at {first['rows']} rows, {end['rss']:.0f} "
                  f"MB at {end['rows']} rows (peak {end['peak']:.0f} MB); JVM "
                  f"{first['jvm']:.0f} -> {end['jvm']:.0f} MB; {end['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
