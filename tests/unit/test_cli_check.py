"""A script is checked without Flink: ``ScriptRunner(None).check`` needs no TableEnvironment, and
neither it nor ``import flink_ml_predict`` imports PyFlink (the command line's fast failure), while
every public name still resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flink_ml_predict
from flink_ml_predict import ConfigurationError
from flink_ml_predict.runner import ScriptRunner
from tests.conftest import ROOT, model_ddl

MODEL = model_ddl("m", "http://127.0.0.1:9/v1")
CALL = "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL {model}, DESCRIPTOR(txt){config})"


def call(model: str = "m", config: str = "") -> str:
    return CALL.format(model=model, config=config)


def test_a_whole_script_is_checked_without_a_table_environment() -> None:
    runner = ScriptRunner(None, environ={"K": "sk-from-env-0123456789"})
    script = ";\n".join([
        "SET 'parallelism.default' = '2'",
        model_ddl("m", "http://127.0.0.1:9/v1", key="${K}"),
        call(), call("default_database.m"), call("`default_catalog`.`default_database`.`m`"),
        call(config=", MAP['max-concurrent-operations', '4']"), "DROP MODEL m"]) + ";"
    statements = runner.check(script)
    assert len(statements) == 7
    assert runner.api_keys == {"sk-from-env-0123456789"}


@pytest.mark.parametrize("script, message", [
    (MODEL + ";\n" + call("n"), "statement 2 (line 10): ML_PREDICT: unknown model 'n'; models "
     "created before this statement: m"),
    (MODEL + ";\n" + call(config=", MAP['timeout', 'soon']"), "statement 2 (line 10): ML_PREDICT "
     "CONFIG: "),
    (MODEL + ";\nDROP MODEL m;\n" + call(), "unknown model 'm'"),
    ("SET 'a' 'b';", "statement 1 (line 1): "),
    (model_ddl("m", "http://127.0.0.1:9/v1", key="${NOT_SET_ANYWHERE}") + ";",
     "NOT_SET_ANYWHERE"),
])
def test_bad_statements_are_found_without_flink(script: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ScriptRunner(None, environ={}).check(script)
    assert str(raised.value).startswith(message) or message in str(raised.value), raised.value


def test_checking_a_script_does_not_import_pyflink(tmp_path) -> None:
    program = (
        "import sys\n"
        "import flink_ml_predict\n"
        "from flink_ml_predict import ConfigurationError\n"
        "from flink_ml_predict.runner import ScriptRunner\n"
        f"ScriptRunner(None).check({MODEL + ';' + call() + ';'!r})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'pyflink')\n"
        "assert not loaded, loaded\n"
        "from flink_ml_predict import ScriptRunner as Runner, create_table_environment\n"
        "assert Runner is ScriptRunner and callable(create_table_environment)\n")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_every_public_name_resolves() -> None:
    for name in flink_ml_predict.__all__:
        assert getattr(flink_ml_predict, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from flink_ml_predict import *", namespace)  # noqa: S102
    assert set(flink_ml_predict.__all__) - {"__version__"} <= set(namespace)
    with pytest.raises(AttributeError):
        flink_ml_predict.no_such_name  # noqa: B018
