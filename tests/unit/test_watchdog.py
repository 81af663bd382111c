"""The orphaned-worker watchdog against real processes (no Flink needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

from flink_ml_predict.runtime import watchdog
from tests.conftest import wait_until


def test_owner_skips_the_shell_and_tee_wrappers(tmp_path) -> None:
    # python (this test) -> a #! bash script -> python: like java -> pyflink-udf-runner.sh ->
    # beam_boot (a script started through its #! line has the script's name as its comm).
    code = "from flink_ml_predict.runtime.watchdog import owner_of; import os; print(owner_of(os.getpid()))"
    runner = tmp_path / "pyflink-udf-runner.sh"
    runner.write_text(f"#!/usr/bin/env bash\n{sys.executable} -c '{code}' 2>&1 | tee /dev/null\n")
    runner.chmod(0o755)
    out = subprocess.run([str(runner)], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == str(os.getpid())


def test_the_callback_runs_when_the_watched_process_dies() -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    gone = threading.Event()
    try:
        watchdog.watch(owner.pid, gone.set, interval=0.05)
        assert not gone.wait(0.3), "called while the process was alive"
    finally:
        owner.kill()
        owner.wait()
    assert gone.wait(10), "not called after the process died"


def test_an_orphaned_worker_process_exits_when_its_owner_is_killed(tmp_path) -> None:
    # owner (python) -> bash -> worker (python running the watchdog as a beam_boot worker would).
    worker = textwrap.dedent(f"""
        import os, sys, threading
        from flink_ml_predict.runtime import watchdog
        owner = watchdog.owner_of(os.getpid())
        watchdog.watch(owner, lambda: watchdog._exit_orphan(owner), interval=0.05)
        open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))
        import logging
        logging.basicConfig()
        # Stuck for good as Beam's shutdown can be: holding the log handler's lock.
        logging.getLogger().handlers[0].acquire()
        threading.Event().wait()
    """)
    (tmp_path / "worker.py").write_text(worker)
    owner_code = (f"import subprocess, sys; subprocess.Popen(['bash', '-c', "
                  f"{sys.executable!r} + ' {tmp_path / 'worker.py'} | tee /dev/null']); "
                  f"sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", owner_code], stdin=subprocess.PIPE)
    pid_file = tmp_path / "pid"
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the worker to start")
        worker_pid = int(pid_file.read_text())
        assert watchdog._stat(worker_pid) is not None and not _is_zombie(worker_pid)
    finally:
        owner.kill()
        owner.wait()
    try:
        wait_until(lambda: _is_zombie(worker_pid), 10, "the orphaned worker to exit")
    finally:
        if not _is_zombie(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)  # leave no process behind when it fails

def _is_zombie(pid: int) -> bool:
    """True when `pid` has exited (gone, or a zombie its reaper has not collected yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_the_watchdog_stays_off_outside_a_process_mode_worker() -> None:
    assert not watchdog.in_process_mode()
    watchdog.start_if_process_worker()
    assert watchdog._running == []
