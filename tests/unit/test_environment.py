"""Which variables are kept from the JVM, and the log4j settings that keep environments out of
Flink's logs (the end-to-end proof is tests/e2e/test_secrets.py and tests/cluster)."""

from __future__ import annotations

import os

import pytest

from flink_ml_predict import environment
from flink_ml_predict.environment import (
    ENVIRONMENT_LOGGERS,
    LOG4J_SETTINGS,
    referenced_variables,
    secret_variables,
)
from tests.conftest import ROOT


def test_referenced_variables_of_a_script() -> None:
    script = ("CREATE MODEL m INPUT (i STRING) OUTPUT (o STRING) WITH ('endpoint' = '${EP}', "
              "'api-key' = '${MY_KEY}', 'model' = 'x'); -- ${IN_A_COMMENT}\nSELECT '$x{NOPE}'")
    assert referenced_variables(script) == {"EP", "MY_KEY", "IN_A_COMMENT"}


def test_secret_variables_known_named_and_same_value() -> None:
    environ = {"OPENAI_API_KEY": "sk-1", "DASHSCOPE_API_KEY": "", "MY_KEY": "sk-2",
               "ALIAS": "sk-2", "COPY": "sk-1", "PATH": "/bin", "EP": "http://x"}
    assert secret_variables(environ, ["MY_KEY", "NOT_SET"]) == {
        "OPENAI_API_KEY", "COPY", "MY_KEY", "ALIAS"}
    assert secret_variables(environ, ["EP"]) >= {"EP"}
    assert secret_variables({"PATH": "/bin"}) == set()


def test_launch_environment_hides_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1")
    monkeypatch.delenv("_python_worker_execution_mode", raising=False)
    with environment._launch_environment({"OPENAI_API_KEY"}, "process"):
        assert "OPENAI_API_KEY" not in os.environ
        assert os.environ["_python_worker_execution_mode"] == "process"
    assert os.environ["OPENAI_API_KEY"] == "sk-1"
    assert "_python_worker_execution_mode" not in os.environ
    with pytest.raises(RuntimeError), environment._launch_environment({"OPENAI_API_KEY"}, None):
        raise RuntimeError("JVM failed to start")
    assert os.environ["OPENAI_API_KEY"] == "sk-1"


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_log4j_settings_raise_the_environment_loggers() -> None:
    properties = _properties(LOG4J_SETTINGS)
    loggers = {properties[key]: properties[key[: -len(".name")] + ".level"]
               for key in properties if key.endswith(".name")}
    assert loggers == {
        "org.apache.beam.runners.fnexecution.control.DefaultJobBundleFactory": "ERROR",
        "org.apache.flink.client.python.PythonEnvUtils": "WARN",
    }
    assert loggers == ENVIRONMENT_LOGGERS
    assert all(key.startswith("logger.") for key in properties)


def test_the_docker_image_applies_the_log4j_settings() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "from flink_ml_predict.environment import LOG4J_SETTINGS" in dockerfile
    assert "glob.glob('/opt/flink/conf/log4j*.properties')" in dockerfile


def test_python_worker_mode_defaults_and_choices() -> None:
    resolve = environment.resolve_worker_mode
    assert resolve(None, None) is None  # PyFlink's choice: loopback on the mini-cluster
    assert resolve(None, "jm:8081") == "process"
    assert resolve("process", None) == "process"
    assert resolve(" Loopback ", None) == "loopback"
    assert resolve("process", "jm:8081") == "process"


@pytest.mark.parametrize(("mode", "jobmanager", "words"), [
    ("thread", None, ["'thread'", "loopback, process"]),
    ("", None, ["''", "loopback, process"]),
    ("loopback", "jm:8081", ["'loopback'", "jm:8081", "'process'"]),
])
def test_python_worker_mode_refused(mode: str, jobmanager: str | None, words: list[str]) -> None:
    with pytest.raises(environment.ConfigurationError) as raised:
        environment.resolve_worker_mode(mode, jobmanager)
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_create_table_environment_refuses_a_bad_worker_mode_before_the_jvm(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check comes before PyFlink is touched: a bad value never starts a JVM."""
    launched = []
    monkeypatch.setattr(environment, "_launch_environment",
                        lambda *args: launched.append(args))  # would be entered by a launch
    with pytest.raises(environment.ConfigurationError, match="'threads'"):
        environment.create_table_environment(python_worker_mode="threads")
    assert launched == []
