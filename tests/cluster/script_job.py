"""A PyFlink program that runs a SQL script with the package: `flink run -py script_job.py FILE`.

Flink's client runs it with the cluster as the execution target, so the Python functions run in
the TaskManagers' Python workers ("process" mode), unlike `flink-ml-predict run --jobmanager`.
`'${NAME}'` references in the script come from this process's environment.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: flink run -py script_job.py SCRIPT.sql", file=sys.stderr)
        return 2
    from flink_ml_predict import create_table_environment, execute_script

    execute_script(create_table_environment(), Path(argv[0]).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
