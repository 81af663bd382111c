"""Chat throughput: the Flink job with ML_PREDICT against a plain asyncio + openai loop.

Every run sends ROWS chat requests to the tests' fake server (its own process, fixed latency, a
fresh one per run) with CONCURRENCY requests in flight, from a command in its own process:

* ``loop``            a plain ``asyncio`` + ``openai`` loop (AsyncOpenAI, a semaphore): the ceiling
* ``loop-aiohttp``    the same loop with the SDK's aiohttp transport (``DefaultAioHttpClient``)
* ``job-p<N>``        the Flink job at parallelism N on the embedded mini-cluster: a bounded
                      datagen sequence -> ML_PREDICT -> blackhole sink (no collect()), with
                      CONCURRENCY / N requests in flight per parallel instance (CONCURRENCY in
                      all, as the loop); the Python worker mode is the package's default
                      (loopback: in the client process, on the mini-cluster at any parallelism)
* ``job-p<N>-loopback`` / ``job-p<N>-process``   the job with that Python worker mode
                      (``create_table_environment(python_worker_mode=...)``): loopback runs every
                      parallel instance in the client process, process mode one Python worker
                      process per instance
* ``<job>-sync``      the job with ML_PREDICT CONFIG ``'async' = 'false'``: the naive synchronous
                      UDF, one request at a time per parallel instance (``job-p1-sync``)
* ``<job>~NAME``      the job with the Flink options of ``--variant NAME:KEY=VALUE,...``
* ``<job>@NAME``      the job with the package from ``--src NAME=DIR`` (e.g. an unpacked
                      ``git archive main flink_ml_predict``) instead of this checkout's:
                      before/after figures from one run

Contenders run in turn, round after round (``--repeats``), so that a drift of the machine's speed
hits all of them alike. For each run, from outside (bench/steady.py): steady-state rows/s (between
10% and 90% of the rows, by the server's count of completed requests), the run's total time,
the server's max in flight, and CPU milliseconds per row in the steady window for the command's
own process (``client``: the loop, or the job's client with its loopback Python worker), its JVM,
the Python worker processes of process mode, and the server. The summary gives median [min..max]
per contender, and each job's ratio to the loop of the same round.

    flock /work/flink.lock python bench/chat_throughput.py --rows 5000 --latency 0.1 \\
        --concurrency 64 --contenders loop,job-p1,job-p2 --repeats 3

``--profile DIR`` records the job's Python worker(s) with py-spy (``pip install py-spy``) during
the steady window of each job run and prints the top entries (bench/profile_summary.py).
``-D key=value`` adds a Flink option to the jobs (e.g. ``-D python.fn-execution.bundle.size=100``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.steady import Sampler, process_tree, server_stats, steady_window  # noqa: E402

KEY = "bench-key"
_CONTENDER = re.compile(
    r"^(?P<kind>loop(?:-aiohttp)?|job-p(?P<parallelism>\d+)(?:-(?P<mode>loopback|process))?"
    r"(?P<sync>-sync)?)(?:@(?P<src>\w+))?(?:~(?P<variant>\w+))?$")


# --- the commands that do the work (each in its own process) ---------------------------------


def run_job(port: int, rows: int, concurrency: int, parallelism: int, mode: str | None,
            options: dict[str, str], output_mode: str, asynchronous: bool = True) -> None:
    """The Flink job, until it has finished."""
    from flink_ml_predict import create_table_environment, execute_script

    try:
        t_env = create_table_environment(parallelism=parallelism, config=options,
                                         python_worker_mode=mode)
    except TypeError:  # an older package (@NAME) without worker modes: loopback
        t_env = create_table_environment(parallelism=parallelism, config=options)
    per_instance = max(1, concurrency // parallelism)  # CONCURRENCY in flight in all
    config = f"'max-concurrent-operations', '{per_instance}'"
    if output_mode != "ORDERED":
        config += f", 'output-mode', '{output_mode}'"
    if not asynchronous:
        config += ", 'async', 'false'"
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
      MAP[{config}]);
    """
    execute_script(t_env, script)


def run_loop(port: int, rows: int, concurrency: int, transport: str) -> None:
    """The same requests through AsyncOpenAI and a semaphore."""
    import openai

    async def main() -> None:
        http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1",
                                    max_retries=0, http_client=http_client)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str | None:
            async with gate:
                messages = [{"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": f"row {i}"}]
                response = await client.chat.completions.create(model="bench", messages=messages)
                return response.choices[0].message.content

        answers = await asyncio.gather(*(one(i) for i in range(1, rows + 1)))
        assert answers == [f"row {i}" for i in range(1, rows + 1)]
        await client.close()

    asyncio.run(main())


# --- the orchestration --------------------------------------------------------------------------


def _start_server(latency: float, latency_max: float | None = None
                  ) -> tuple[subprocess.Popen, int]:
    """The fake server in its own process; (process, port)."""
    spread = ["--latency-max", str(latency_max)] if latency_max is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--api-key", KEY,
         "--latency", str(latency), *spread], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().split(" on ", 1)[1].strip()  # the start-up line: bound
    return process, int(url.rsplit(":", 1)[1])


def _command(contender: str, port: int, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--run", contender,
               "--port", str(port), "--rows", str(args.rows),
               "--concurrency", str(args.concurrency), "--output-mode", args.output_mode]
    match = _CONTENDER.match(contender)
    variants = dict(v.split(":", 1) for v in args.variant)
    if match and match["variant"]:
        if match["variant"] not in variants:
            raise SystemExit(f"{contender} needs --variant {match['variant']}:KEY=VALUE,...")
        extra = [o for o in variants[match["variant"]].split(",") if o]
    else:
        extra = []
    for option in [*args.D, *extra]:
        command += ["-D", option]
    source = _source(contender, args)
    if source:
        command += ["--src", f"this={source}"]
    return command


def _source(contender: str, args: argparse.Namespace) -> str | None:
    """The package directory of a ``<job>@NAME`` contender (None: this checkout)."""
    match = _CONTENDER.match(contender)
    if match is None or match["src"] is None:
        return None
    sources = dict(entry.split("=", 1) for entry in args.src)
    name = "this" if args.run else match["src"]
    if name not in sources:
        raise SystemExit(f"{contender} needs --src {name}=DIR")
    return str(Path(sources[name]).resolve())


def _profile(pid: int, window_s: float, out: Path) -> list[subprocess.Popen]:
    """py-spy recorders for the Python worker(s) of the job whose client is ``pid``."""
    workers = _python_workers(pid) or [pid]
    py_spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen(
        [str(py_spy), "record", "--pid", str(worker), "--duration", str(max(int(window_s), 1)),
         "--rate", "100", "--format", "raw", "--nonblocking", "--threads", "--gil", "--output",
         str(out.with_suffix(f".{worker}.txt"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for worker in workers]


def _python_workers(pid: int) -> list[int]:
    """Process mode's Python workers under the JVM under ``pid`` (not Beam's boot processes,
    which only start a worker, or ask the loopback server in ``pid`` for one)."""
    workers = []
    for worker, kind, _ in process_tree(pid):
        try:
            command = Path(f"/proc/{worker}/cmdline").read_bytes()
        except OSError:
            continue
        if kind == "workers" and b"beam_boot" not in command:
            workers.append(worker)
    return workers


def measure(contender: str, args: argparse.Namespace, round_no: int) -> dict:
    """One run of one contender; its figures."""
    server, port = _start_server(args.latency, args.latency_max)
    sampler = Sampler(port, KEY, server.pid)
    profilers: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        env = dict(os.environ)
        source = _source(contender, args)
        if source:  # for process mode's workers too, which the JVM starts with this environment
            env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        process = subprocess.Popen(_command(contender, port, args), cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler.start(process.pid)
        ideal_window = 0.8 * args.rows * max(_mean_latency(args), 0.001) / args.concurrency
        while process.poll() is None:
            if (args.profile and not profilers and contender.startswith("job")
                    and sampler.samples and sampler.samples[-1].completed >= 0.1 * args.rows):
                out = Path(args.profile) / f"{contender}-r{round_no}"
                profilers = _profile(process.pid, 2 * ideal_window, out)
            time.sleep(0.05)
        total = time.monotonic() - started
        sampler.stop()
        stderr = process.stderr.read() if process.stderr else ""
        stats = server_stats(port, KEY)
    finally:
        for profiler in profilers:
            profiler.wait()
        server.terminate()
        server.wait()
    if process.returncode != 0:
        raise SystemExit(f"{contender} failed ({process.returncode}):\n{stderr[-3000:]}")
    window = steady_window(sampler.samples, args.rows)
    if window is None or stats["completed"] < args.rows:
        raise SystemExit(f"{contender}: {stats['completed']} of {args.rows} requests completed")
    return {"contender": contender, "round": round_no, "rows_per_s": window.rows_per_s,
            "total_s": total, "max_in_flight": stats["max_in_flight"],
            "cpu": window.cpu_ms_per_row}


def _spread(values: Sequence[float], digits: int = 0) -> str:
    fmt = f"{{:.{digits}f}}"
    return (f"{fmt.format(statistics.median(values))} "
            f"[{fmt.format(min(values))}..{fmt.format(max(values))}]")


def summarise(results: list[dict], contenders: list[str]) -> None:
    """Median [min..max] per contender; ratios to the loop of the same round."""
    print("\n# summary: median [min..max] over rounds; cpu = CPU ms per row in the steady window")
    loops = {r["round"]: r["rows_per_s"] for r in results if r["contender"] == "loop"}
    for contender in contenders:
        runs = [r for r in results if r["contender"] == contender]
        cpu = {k: [r["cpu"][k] for r in runs] for k in runs[0]["cpu"]}
        line = (f"{contender:18} rows/s {_spread([r['rows_per_s'] for r in runs])}"
                f"  max-in-flight {_spread([r['max_in_flight'] for r in runs])}")
        ratios = [r["rows_per_s"] / loops[r["round"]] for r in runs if r["round"] in loops]
        if contender != "loop" and ratios:
            line += f"  x loop {_spread(ratios, 2)}"
        print(line)
        print(" " * 19 + "cpu " + "  ".join(
            f"{kind} {_spread(values, 2)}" for kind, values in cpu.items()
            if max(values) > 0.005))


def _mean_latency(args: argparse.Namespace) -> float:
    if args.latency_max is None:
        return float(args.latency)
    return (args.latency + args.latency_max) / 2


def orchestrate(args: argparse.Namespace) -> int:
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for contender in contenders:
        if not _CONTENDER.match(contender):
            raise SystemExit(f"unknown contender '{contender}'")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    ideal = args.rows * _mean_latency(args) / args.concurrency
    limit = f"ideal {args.rows / ideal:.0f} rows/s" if ideal else "no latency"
    spread = f"-{args.latency_max * 1000:.0f}" if args.latency_max is not None else ""
    print(f"# {args.rows} rows, {args.latency * 1000:.0f}{spread} ms latency, "
          f"{args.concurrency} in "
          f"flight, output-mode {args.output_mode}; {limit}; options {args.D or 'none'}")
    print("round,contender,rows_per_s,total_s,max_in_flight,cpu_ms_per_row(client/jvm/workers/"
          "total/server)", flush=True)
    results = []
    for round_no in range(1, args.repeats + 1):
        order = contenders if round_no % 2 else list(reversed(contenders))
        for contender in order:
            result = measure(contender, args, round_no)
            results.append(result)
            cpu = result["cpu"]
            print(f"{round_no},{contender},{result['rows_per_s']:.0f},{result['total_s']:.1f},"
                  f"{result['max_in_flight']},"
                  + "/".join(f"{cpu.get(k, 0.0):.2f}"
                             for k in ("client", "jvm", "workers", "total", "server")),
                  flush=True)
    summarise(results, contenders)
    if args.profile:
        from bench.profile_summary import summarise_dir

        summarise_dir(Path(args.profile), top=args.profile_top)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--latency-max", type=float, default=None,
                        help="draw each answer's latency uniformly from [--latency, this]")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--contenders", default="loop,job-p1,job-p2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-mode", default="ORDERED", choices=("ORDERED", "ALLOW_UNORDERED"))
    parser.add_argument("-D", action="append", default=[], metavar="KEY=VALUE",
                        help="a Flink option for the jobs")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,...",
                        help="Flink options of <job>~NAME contenders")
    parser.add_argument("--src", action="append", default=[], metavar="NAME=DIR",
                        help="the package directory of <job>@NAME contenders")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the job's Python workers")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--run", help=argparse.SUPPRESS)  # a contender, in its own process
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is None:
        return orchestrate(args)
    match = _CONTENDER.match(args.run)
    assert match is not None
    source = _source(args.run, args)
    if source:  # that package, not this checkout's (first on sys.path above)
        sys.path.insert(0, source)
    if args.run.startswith("loop"):
        run_loop(args.port, args.rows, args.concurrency,
                 "aiohttp" if args.run.endswith("aiohttp") else "httpx")
    else:
        options = dict(option.split("=", 1) for option in args.D)
        run_job(args.port, args.rows, args.concurrency, int(match["parallelism"]), match["mode"],
                options, args.output_mode, asynchronous=match["sync"] is None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
