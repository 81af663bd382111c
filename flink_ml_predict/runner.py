"""Runs Flink SQL scripts the way the SQL client does, with CREATE MODEL and ML_PREDICT working.

PyFlink's ``execute_sql`` takes one statement and rejects the SQL client's own statements, so the
runner splits the script itself (:mod:`flink_ml_predict.sqltext`) and per statement:

* ``SET`` / ``RESET``: applied to the table config;
* ``CREATE [TEMPORARY] MODEL``: validated into a :class:`ModelSpec` and registered; Flink's catalog
  also gets the model, with the api-key masked, so SHOW / DESCRIBE / DROP MODEL work as usual;
* ``DROP MODEL``: removed from both;
* ``EXECUTE STATEMENT SET BEGIN ... END``: one job through ``create_statement_set``;
* anything containing ML_PREDICT: rewritten (:mod:`flink_ml_predict.rewrite`), then executed;
* everything else: passed to Flink untouched, except options that only Alibaba's Flink knows
  (``'logger'`` of the print connector), which are dropped with a warning.

``'${NAME}'`` in string literals is replaced from the environment first.

:meth:`ScriptRunner.check` validates a whole script without Flink (no TableEnvironment needed):
the command line runs it before starting the JVM, so bad input fails fast. A job's failure is
reduced to one message with what to do (:mod:`flink_ml_predict.failures`); the full text is logged
at DEBUG. Ctrl-C while a job runs cancels the job before the KeyboardInterrupt goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, TextIO

from . import sqltext
from .definition import build_spec
from .errors import ConfigurationError, PredictCallError, StatementError
from .failures import advice, flink_message, input_row, python_error
from .model import Column, masked_options
from .registry import ModelRegistry, ScriptModels
from .rewrite import Rewritten, apply_settings, call_settings, rewrite

_LOGGER = logging.getLogger(__name__)

# Options of Alibaba Cloud's Flink (VVR) that open-source Flink rejects, per connector.
VVR_ONLY_OPTIONS = {"print": ("logger",)}

__all__ = ["JobWatcher", "ScriptRunner", "StatementError", "VVR_ONLY_OPTIONS", "flink_message"]


class JobWatcher(Protocol):
    """Watches the jobs a runner waits for (the command line's progress line and summary)."""

    def watch(self, where: str, job_client: Any, *, live: bool) -> AbstractContextManager[None]:
        """Entered when the job was submitted, left when it ended (or failed, or was
        interrupted); ``live``: the job's output does not go to this terminal (an INSERT)."""
        ...


class ScriptRunner:
    """Executes SQL scripts on one TableEnvironment.

    Args:
        t_env: the TableEnvironment (streaming or batch).
        environ: where ``${NAME}`` references are looked up (default: os.environ).
        out: where query results and notices are printed.
        wait: wait for INSERT jobs to finish (needed on the embedded mini-cluster, which stops
            with the Python process).
        notices: where "job ... submitted" lines go (default: standard error).
        watcher: told about each job while it is waited for.
        show_rows: name the input row a failed job was handling in its message (it may hold
            personal data; off by default).

    Example:
        >>> runner = ScriptRunner(t_env)           # doctest: +SKIP
        >>> runner.run(open("sql/seed_003_openai_sentiment.sql").read())  # doctest: +SKIP
    """

    def __init__(self, t_env: Any, *, environ: Mapping[str, str] | None = None,
                 out: TextIO | None = None, wait: bool = True, notices: TextIO | None = None,
                 watcher: JobWatcher | None = None, show_rows: bool = False) -> None:
        self.t_env = t_env
        self.registry = ModelRegistry() if t_env is None else ModelRegistry.of(t_env)
        self.environ = os.environ if environ is None else environ
        self.out = out or sys.stdout
        self.wait = wait
        self.notices = notices
        self.watcher = watcher
        self.show_rows = show_rows
        self.api_keys: set[str] = set()
        """The api-keys of the models validated so far (to keep them out of log files)."""
        self.cancelled: bool | None = None
        """After Ctrl-C while a job ran: whether that job was cancelled."""
        self._set_keys: set[str] = set()
        self.results: list[Any] = []

    # --- entry points -------------------------------------------------------------------------

    def check(self, script: str) -> list[sqltext.Statement]:
        """Parses and validates a whole script without running anything; returns its statements.

        Needs no TableEnvironment (``ScriptRunner(None).check(script)``): statements are split,
        ``${NAME}`` substituted, SET parsed, every CREATE MODEL validated and every ML_PREDICT
        call checked for its model (following CREATE/DROP MODEL and USE) and CONFIG; without a
        TableEnvironment names resolve against Flink's default catalog and database.
        """
        statements = sqltext.split_statements(script)
        models = ScriptModels(self.registry)
        for statement in statements:
            with _located(statement):
                self._precheck(statement, models)
        return statements

    def run(self, script: str) -> list[Any]:
        """Runs every statement of a script in order; stops at the first failure."""
        # Everything that can be checked without Flink is checked before any job starts.
        for statement in self.check(script):
            self.execute(statement)
        return self.results

    def execute(self, statement: sqltext.Statement) -> Any:
        """Executes one statement; returns Flink's TableResult where there is one."""
        with _located(statement):
            return self._execute(statement)

    def _execute(self, statement: sqltext.Statement) -> Any:
        where = statement.label()
        text = sqltext.substitute_env(statement.text, self.environ)
        kind = sqltext.statement_kind(text)
        handler: Callable[[str, str], Any] = {
            "set": self._set,
            "reset": self._reset,
            "create_model": self._create_model,
            "drop_model": self._drop_model,
            "statement_set": self._statement_set,
        }.get(kind, self._flink_statement)
        result = handler(text, where)
        if result is not None:
            self.results.append(result)
        return result

    # --- statements ---------------------------------------------------------------------------

    def _precheck(self, statement: sqltext.Statement, models: ScriptModels) -> None:
        """Parses and validates a statement; `models` follows the script's CREATE/DROP/USE."""
        where = statement.label()
        text = sqltext.substitute_env(statement.text, self.environ)
        kind = sqltext.statement_kind(text)
        if kind == "create_model":
            create = sqltext.parse_create_model(text)
            self._spec(create, where)
            models.add(create.name_parts)
            return
        if kind == "drop_model":
            models.discard(sqltext.parse_drop_model(text).name_parts)
            return
        if kind == "set":
            sqltext.parse_set(text)
            return
        use = sqltext.parse_use(text) if kind == "other" else None
        if use is not None:
            models.use(*use)
            return
        texts = sqltext.statement_set_inner(text) if kind == "statement_set" else [text]
        for call in (c for t in texts for c in sqltext.find_predict_calls(t)):
            unknown = models.unknown(call.model_parts)
            if unknown is not None:
                raise PredictCallError(f"{where}: {unknown}")
            call_settings(call.config, None, where)

    def _spec(self, create: sqltext.CreateModel, where: str) -> Any:
        spec = build_spec(create.name, create.options,
                          [Column(c.name, c.type, c.comment) for c in create.inputs],
                          [Column(c.name, c.type, c.comment) for c in create.outputs],
                          where=where)
        self.api_keys.add(spec.api_key.reveal())
        return spec

    def _set(self, text: str, where: str) -> None:
        pair = sqltext.parse_set(text)
        if pair is None:
            config = self.t_env.get_config().get_configuration().to_dict()
            for key in sorted(config):
                print(f"'{key}' = '{config[key]}'", file=self.out)
            return
        key, value = pair
        self.t_env.get_config().set(key, value)
        self._set_keys.add(key)
        _LOGGER.info("%s: SET '%s'", where, key)

    def _reset(self, text: str, where: str) -> None:
        key = sqltext.parse_reset(text)
        keys = [key] if key is not None else sorted(self._set_keys)
        configuration = self.t_env.get_config().get_configuration()
        for name in keys:
            configuration.remove_config(name)
            self._set_keys.discard(name)

    def _create_model(self, text: str, where: str) -> None:
        create = sqltext.parse_create_model(text)
        spec = self._spec(create, where)
        added = self.registry.add(create.name_parts, spec, if_not_exists=create.if_not_exists,
                                  where=where)
        if added:
            self._flink(create.render(masked_options(create.options)), where)
        _LOGGER.info("%s: model %s (%s %s, %s)", where, spec.name, spec.provider.name, spec.task,
                     spec.model)

    def _drop_model(self, text: str, where: str) -> None:
        drop = sqltext.parse_drop_model(text)
        existed = self.registry.remove(drop.name_parts)
        if not existed and not drop.if_exists:
            raise ConfigurationError(f"{where}: DROP MODEL: model {drop.name} does not exist")
        if existed:
            self._flink(text, where)

    def _statement_set(self, text: str, where: str) -> Any:
        statement_set = self.t_env.create_statement_set()
        settings = []
        for inner in sqltext.statement_set_inner(text):
            rewritten = rewrite(inner, t_env=self.t_env, registry=self.registry, where=where)
            settings += rewritten.settings
            statement_set.add_insert_sql(rewritten.text)
        apply_settings(self.t_env, Rewritten("", settings=settings).statement_settings(where))
        try:
            result = statement_set.execute()
        except Exception as exc:  # noqa: BLE001 - py4j carries Flink's message
            _LOGGER.debug("%s: Flink rejected the statement set:\n%s", where, exc)
            raise StatementError(f"{where}: Flink rejected the statement set: "
                                 f"{flink_message(exc)}") from None
        return self._finish(result, where)

    def _flink_statement(self, text: str, where: str) -> Any:
        kind = sqltext.statement_kind(text)
        text = self._drop_vvr_options(text, where)
        if kind == "explain":
            prefix, inner = sqltext.explain_target(text)
            rewritten = rewrite(inner, t_env=self.t_env, registry=self.registry, where=where)
            rewritten.text = prefix + rewritten.text
        else:
            rewritten = rewrite(text, t_env=self.t_env, registry=self.registry, where=where)
        apply_settings(self.t_env, rewritten.statement_settings(where))
        result = self._flink(rewritten.text, where)
        if kind == "query":
            return self._finish(result, where, query=True)
        if kind == "explain" or (kind == "other" and _returns_rows(text)):
            result.print()
            return result
        if kind == "insert":
            return self._finish(result, where)
        return result

    # --- helpers ------------------------------------------------------------------------------

    def _drop_vvr_options(self, text: str, where: str) -> str:
        options = sqltext.with_options(text)
        connector = options.get("connector", "").lower()
        dropped = [k for k in VVR_ONLY_OPTIONS.get(connector, ()) if k in options]
        if not dropped:
            return text
        for key in dropped:
            _LOGGER.warning(
                "%s: dropped option '%s' = '%s' of the %s connector: it exists only in Alibaba "
                "Cloud's Flink (VVR) and open-source Flink rejects it. Rows of a print sink go to "
                "standard output (a TaskManager's .out file on a cluster).", where, key,
                options[key], connector)
        return sqltext.remove_with_options(text, dropped)

    def _flink(self, text: str, where: str) -> Any:
        try:
            return self.t_env.execute_sql(text)
        except Exception as exc:  # noqa: BLE001
            _LOGGER.debug("%s: Flink rejected the statement:\n%s", where, exc)
            raise StatementError(f"{where}: Flink rejected the statement: "
                                 f"{flink_message(exc)}") from None

    def _finish(self, result: Any, where: str, *, query: bool = False) -> Any:
        """Waits for the job of an INSERT or statement set (or prints a query's rows)."""
        client = result.get_job_client()
        try:  # from here on, Ctrl-C cancels the job
            if client is not None and not query:
                print(f"{where}: job {client.get_job_id()} submitted",
                      file=self.notices or sys.stderr)
            if not self.wait and not query:
                return result
            watching = (self.watcher.watch(where, client, live=not query)
                        if self.watcher is not None and client is not None
                        else contextlib.nullcontext())
            with watching:
                if query:
                    result.print()
                else:
                    result.wait()
        except KeyboardInterrupt:
            self.cancelled = _cancel(client, where)
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._job_failure(exc, where) from None
        return result

    def _job_failure(self, exc: BaseException, where: str) -> StatementError:
        """One message for a failed job: our failure or Flink's, what to do, the row if asked."""
        _LOGGER.debug("%s: the job failed:\n%s", where, exc)
        ours = python_error(exc)
        message = f"{where}: job failed: {ours or flink_message(exc)}"
        hint = advice(ours) if ours is not None else None
        if hint is not None:
            message += f"\n  what to do: {hint}"
        row = input_row(exc) if self.show_rows else None
        if row is not None:
            message += f"\n  input row: {row}"
        return StatementError(message)


def _cancel(client: Any, where: str) -> bool:
    """Cancels a job after Ctrl-C (a second Ctrl-C stops waiting for it); whether it was."""
    if client is None:
        return False
    try:
        client.cancel().result()
    except Exception:  # noqa: BLE001 - finished or failed meanwhile; nothing left to cancel
        _LOGGER.debug("%s: cancelling the job failed", where, exc_info=True)
        return False
    return True


@contextlib.contextmanager
def _located(statement: sqltext.Statement) -> Iterator[None]:
    """Prefixes parse errors with the statement's label and makes their line numbers absolute.

    The SQL text layer counts lines from the start of the statement it was given.
    """
    try:
        yield
    except ConfigurationError as exc:
        message = str(exc)
        if message.startswith(statement.label()):
            raise
        message = re.sub(r"\bline (\d+)",
                         lambda m: f"line {int(m.group(1)) + statement.line - 1}", message)
        raise type(exc)(f"{statement.label()}: {message}") from None


def _returns_rows(text: str) -> bool:
    words = text.split(None, 2)
    return bool(words) and words[0].upper() in ("SHOW", "DESCRIBE", "DESC")
