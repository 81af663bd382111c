"""The ``flink-ml-predict`` command.

``flink-ml-predict run SCRIPT.sql``   runs a SQL script on the embedded mini-cluster
                                      (``--jobmanager HOST:PORT``: on a running cluster).
``flink-ml-predict demo``             runs the seed sentiment example: against DashScope/Bailian
                                      when DASHSCOPE_API_KEY is set, OpenAI when OPENAI_API_KEY is
                                      set, otherwise against the local demo server.
``flink-ml-predict sql-client M.sql`` writes init.sql + Python functions for Flink's SQL client.
``flink-ml-predict upload FILE...``   uploads documents for qwen-long (purpose file-extract) and
                                      prints their file ids.
``flink-ml-predict demo-server``      serves the demo server (rule-based answers, NOT a model;
                                      ``standin`` is the old name).

``run`` and ``demo`` check the whole script before starting Flink (bad input fails in a fraction
of a second), show a live progress line per model on a terminal and a summary after each job
(``--quiet``: neither), and report a failure in one message; the full trace goes to a log file
whose path is printed (:mod:`flink_ml_predict.console`). Ctrl-C cancels the running job and exits
130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import FlinkMlPredictError, StatementError

_LOGGER = logging.getLogger(__name__)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

DEMO_SCRIPTS = {
    "bailian": "seed_002_bailian_sentiment.sql",
    "openai": "seed_003_openai_sentiment.sql",
}
DEFAULT_ENDPOINTS = {
    "BAILIAN_ENDPOINT": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
    "OPENAI_ENDPOINT": "https://api.openai.com/v1/chat/completions",
}
DEMO_KEY = "demo-key"  # docker-compose.yml uses it too


def _parse_definitions(pairs: Sequence[str]) -> dict[str, str]:
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"error: -D expects key=value, got '{pair}'")
        config[key.strip()] = value.strip()
    return config


def read_script(path: Path) -> str | None:
    """The text of a UTF-8 script (a byte order mark is dropped), or None after saying why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        print(f"error: cannot read {path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line "
              f"{line} ({exc.reason}); save the script as UTF-8", file=sys.stderr)
        return None


def _run_script(path: Path, args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    from .console import Console, RunLog, redirected
    from .environment import secret_variables
    from .runner import ScriptRunner

    script = read_script(path)
    if script is None:
        return 2
    console = Console(sys.stderr, live=not args.quiet)
    # Everything that needs no Flink is checked before the JVM starts (about a second's work).
    checker = ScriptRunner(None, environ=environ)
    try:
        checker.check(script)
        config = _parse_definitions(args.define)
    except FlinkMlPredictError as exc:
        console.message(f"error: {path.name}: {exc}")
        return 1
    run_log = RunLog(args.log_file, name=path.stem)
    names = secret_variables(os.environ if environ is None else environ)
    run_log.mask([*checker.api_keys, *((environ or os.environ)[n] for n in names)])
    try:
        with redirected(console, run_log, verbose=args.verbose):
            return _run_checked(path, script, args, environ, config, console, run_log)
    finally:
        run_log.close()


def _run_checked(path: Path, script: str, args: argparse.Namespace,
                 environ: dict[str, str] | None, config: dict[str, str], console: Any,
                 run_log: Any) -> int:
    """Runs a checked script with the console and log file in place; the exit status."""
    from .environment import create_table_environment, referenced_variables
    from .progress import JobMonitor, LocalSource, RestSource
    from .runner import ScriptRunner

    jobmanager = getattr(args, "jobmanager", None)
    runner: ScriptRunner | None = None

    def models() -> dict[str, Any]:
        registry = runner.registry if runner is not None else None
        specs = [registry.get([str(p) for p in key]) for key in registry.keys()] if registry else []
        return {spec.name: spec for spec in specs if spec is not None}

    if jobmanager is None:
        from .runtime.metrics import LOCAL

        LOCAL.enable()  # the functions run in this process: their counters are read here
    monitor = JobMonitor(
        console,
        (lambda job: RestSource(f"http://{jobmanager}", job)) if jobmanager else
        (lambda job: LocalSource()),
        models=models, quiet=args.quiet, remote=jobmanager is not None,
        period=1.0 if jobmanager else 0.5)
    try:
        t_env = create_table_environment(batch=args.batch, parallelism=args.parallelism,
                                         config=config, jobmanager=jobmanager,
                                         secret_names=referenced_variables(script))
        runner = ScriptRunner(t_env, environ=environ, notices=console, watcher=monitor,
                              show_rows=args.verbose)
        runner.run(script)
    except KeyboardInterrupt:
        cancelled = bool(runner is not None and runner.cancelled)
        console.message(monitor.interrupted(cancelled=cancelled)
                        or f"interrupted: {path.name} stopped" + (
                            " (its running job was cancelled)" if cancelled else ""))
        _exit_now(EXIT_INTERRUPTED, run_log)
    except FlinkMlPredictError as exc:
        console.message(f"error: {path.name}: {exc}")
        if isinstance(exc, StatementError):
            run_log.keep()
            console.message(f"  full trace: {run_log.path}")
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug of ours or a broken installation
        _LOGGER.error("%s failed", path.name, exc_info=True)
        run_log.keep()
        console.message(f"error: {path.name}: internal error ({type(exc).__name__}: {exc})\n"
                        f"  full trace: {run_log.path}")
        return 1
    return 0


def _exit_now(status: int, run_log: Any) -> NoReturn:
    """Ends the process at once: after Ctrl-C the cancelled job's threads may still be winding
    down, and the embedded cluster's JVM ends when this process does (its stdin closes)."""
    run_log.close()
    sys.stdout.flush()
    os._exit(status)


def _demo(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    sql_dir = Path(args.sql_dir)
    server = None
    if environ.get("DASHSCOPE_API_KEY"):
        script = sql_dir / DEMO_SCRIPTS["bailian"]
        environ.setdefault("BAILIAN_ENDPOINT", DEFAULT_ENDPOINTS["BAILIAN_ENDPOINT"])
        print(f"demo: calling Bailian (DashScope) at {environ['BAILIAN_ENDPOINT']}",
              file=sys.stderr)
    elif environ.get("OPENAI_API_KEY"):
        script = sql_dir / DEMO_SCRIPTS["openai"]
        environ.setdefault("OPENAI_ENDPOINT", DEFAULT_ENDPOINTS["OPENAI_ENDPOINT"])
        print(f"demo: calling OpenAI at {environ['OPENAI_ENDPOINT']}", file=sys.stderr)
    else:
        from .demo_server import DemoServer

        server = DemoServer(api_key=DEMO_KEY).start()
        script = sql_dir / DEMO_SCRIPTS["bailian"]
        environ["DASHSCOPE_API_KEY"] = DEMO_KEY
        environ["BAILIAN_ENDPOINT"] = server.dashscope_base_url + "/chat/completions"
        print("demo: neither DASHSCOPE_API_KEY nor OPENAI_API_KEY is set, so the model is the "
              f"local DEMO server at {server.url} (rule-based answers, NOT a real model). "
              "Set one of those variables to call the real service.", file=sys.stderr)
    try:
        return _run_script(script, args, environ)
    finally:
        if server is not None:
            server.stop()


def _sql_client(args: argparse.Namespace) -> int:
    from .sqlclient import generate

    script = read_script(args.script)
    if script is None:
        return 2
    try:
        generated = generate(script, args.out, module=args.module)
    except (OSError, FlinkMlPredictError) as exc:
        print(f"error: {args.script}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {generated.init_sql} and {generated.module} (functions: "
          f"{', '.join(generated.functions)})\nstart the SQL client with:\n  sql-client.sh -i "
          f"{generated.init_sql} -pyfs {generated.module}")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from .upload import run_upload

    return run_upload(args.files, args.endpoint, args.api_key, wait=args.wait)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="flink-ml-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level; a failed job's message names its input row")
    commands = parser.add_subparsers(dest="command", required=True)

    def job_options(sub: argparse.ArgumentParser) -> None:
        # SUPPRESS: given after the command, -v must not reset one given before it.
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log at INFO level; a failed job's message names its input row")
        sub.add_argument("-q", "--quiet", action="store_true",
                         help="no progress line and no summary of each job")
        sub.add_argument("--log-file", type=Path, default=None, metavar="PATH",
                         help="write the run's log here and keep it (default: a file in the "
                         "temp directory, kept and named only when the run fails)")
        sub.add_argument("--batch", action="store_true", help="batch mode (default: streaming)")
        sub.add_argument("-p", "--parallelism", type=int, default=None,
                         help="default parallelism of the jobs")
        sub.add_argument("-D", dest="define", action="append", default=[], metavar="KEY=VALUE",
                         help="a Flink configuration option (repeatable)")

    run = commands.add_parser("run", help="run a SQL script on the embedded mini-cluster")
    run.add_argument("script", type=Path, help="the SQL script")
    run.add_argument("--jobmanager", metavar="HOST:PORT", default=None,
                     help="run on the cluster whose REST endpoint is HOST:PORT (default: the "
                     "embedded mini-cluster)")
    job_options(run)

    demo = commands.add_parser("demo", help="run the seed sentiment example")
    demo.add_argument("--sql-dir", default="sql", help="folder of the example scripts")
    job_options(demo)

    client = commands.add_parser(
        "sql-client", help="write init.sql and the Python functions the Flink SQL client needs")
    client.add_argument("script", type=Path, help="a script of CREATE MODEL (and SET) statements")
    client.add_argument("--out", type=Path, default=Path("sql-client"), help="output folder")
    client.add_argument("--module", default="flink_ml_predict_models",
                        help="name of the generated Python module")

    upload = commands.add_parser(
        "upload", help="upload documents for qwen-long (purpose file-extract); prints their ids")
    upload.add_argument("files", type=Path, nargs="+", metavar="FILE", help="the documents")
    upload.add_argument("--endpoint", required=True, metavar="URL",
                        help="base URL, e.g. https://dashscope.aliyuncs.com/compatible-mode/v1")
    upload.add_argument("--api-key", default=None,
                        help="default: DASHSCOPE_API_KEY, else OPENAI_API_KEY (never printed)")
    upload.add_argument("--wait", action="store_true",
                        help="return once every file is parsed (status processed)")

    server = commands.add_parser(
        "demo-server", aliases=["standin"],
        help="serve the demo OpenAI/DashScope-compatible server (rule-based answers, NOT a model)")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    return parser


def _demo_server(args: argparse.Namespace) -> NoReturn:
    from .demo_server import serve

    status = serve(args.host, args.port, args.api_key)
    # Nothing is left to flush once the server has stopped; finalizing the interpreter would tear
    # down the package's whole import graph (PyFlink, pandas, the SDKs) first: about a second on
    # an idle machine and many on a loaded one, so a stop signal would not end the process promptly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the flink-ml-predict command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "run":
        return _run_script(args.script, args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "sql-client":
        return _sql_client(args)
    if args.command == "upload":
        return _upload(args)
    _demo_server(args)


if __name__ == "__main__":
    sys.exit(main())
