"""Script files the CLI cannot read are one clean line and exit 2, before any JVM starts; a UTF-8
byte order mark is accepted. (`flink-ml-predict` runs in a new process; none of these start Flink.)"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_KEY, run_cli

MODEL = ("CREATE MODEL m1 INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (\n"
         "  'provider' = 'openai', 'endpoint' = 'http://127.0.0.1:9/v1',\n"
         "  'api-key' = '${OPENAI_API_KEY}', 'model' = 'gpt-4o-mini');\n")


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_undecodable_script_is_exit_2_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "latin1.sql"
    script.write_bytes(b"-- caf\xe9\nSELECT 1;\n")
    for command in (["run", str(script)], ["sql-client", str(script), "--out", str(tmp_path)]):
        result = run_cli(command)
        assert result.returncode == 2
        assert one_error_line(result.stderr) == (
            f"error: cannot read {script}: not UTF-8 text: byte 0xe9 at line 1 (invalid "
            "continuation byte); save the script as UTF-8")


def test_utf16_script_is_refused_the_same_way(tmp_path: Path) -> None:
    script = tmp_path / "utf16.sql"
    script.write_text("SELECT 1;\n", encoding="utf-16")
    result = run_cli(["run", str(script)])
    assert result.returncode == 2
    assert one_error_line(result.stderr).startswith(
        f"error: cannot read {script}: not UTF-8 text: byte 0xff at line 1")


def test_missing_script_is_exit_2_for_both_commands(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sql"
    for command in (["run", str(missing)], ["sql-client", str(missing), "--out", str(tmp_path)]):
        result = run_cli(command)
        assert result.returncode == 2
        assert one_error_line(result.stderr) == (
            f"error: cannot read {missing}: No such file or directory")


def test_sql_client_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    script = tmp_path / "bom.sql"
    script.write_bytes(b"\xef\xbb\xbf" + MODEL.encode())
    out = tmp_path / "out"
    result = run_cli(["sql-client", str(script), "--out", str(out)], {"OPENAI_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert "(functions: m1)" in result.stdout
    module = (out / "flink_ml_predict_models.py").read_text(encoding="utf-8")
    assert 'm1 = model_function("CREATE MODEL m1 INPUT' in module
    assert "\ufeff" not in module + (out / "init.sql").read_text(encoding="utf-8")
    assert TEST_KEY not in module
