"""Sentiment of movie comments from a PyFlink program, with the package's Python API.

The seed sentiment job (sql/seed_003_openai_sentiment.sql) written with ``register_model`` and
``predict`` instead of SQL. The endpoint and the key come from the environment, never from the
command line (arguments are visible in ``ps``):

    OPENAI_ENDPOINT   e.g. https://api.openai.com/v1/chat/completions (the default)
    OPENAI_API_KEY    the key (required)
    OPENAI_MODEL      default gpt-3.5-turbo

Run it

* on a cluster with Flink's own client (the client ships flink-python with the job; the
  TaskManagers need an interpreter with flink_ml_predict installed)::

      $FLINK_HOME/bin/flink run -py examples/pyflink_sentiment_job.py \\
          -pyexec /path/to/venv/bin/python -pyclientexec /path/to/venv/bin/python \\
          [--output /shared/dir]

* with plain Python, on the embedded mini-cluster or on a running cluster::

      python examples/pyflink_sentiment_job.py [--jobmanager HOST:REST_PORT] [--output DIR]

Without ``--output`` the rows go to Flink's print sink: this process's standard output on the
mini-cluster, the TaskManager's ``.out`` file in its log directory on a cluster. With
``--output DIR`` they are written as JSON lines to a filesystem sink in DIR (on a cluster, a
directory the TaskManagers can write to).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

MODEL = "ai_analyze_sentiment"
SYSTEM_PROMPT = ("Classify the text below into one of the following labels: [positive, negative, "
                 "neutral, mixed]. Output only the label.")
COMMENTS = [
    (1, "好东西", "最爱小孩子猜声音那段,算得上看过的电影里相当浪漫的叙事了。很温和也很有爱。",
     "positive"),
    (2, "水饺皇后", "乏善可陈", "negative"),
]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobmanager", metavar="HOST:PORT", default=None,
                        help="submit to the cluster at this REST address (not needed under "
                             "'flink run', which submits to its own cluster)")
    parser.add_argument("--output", default=None,
                        help="directory of a filesystem sink (JSON lines); default: print sink")
    parser.add_argument("--print-identifier", default="sentiment",
                        help="prefix of the print sink's lines")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        print("error: set OPENAI_API_KEY (and OPENAI_ENDPOINT for another endpoint)",
              file=sys.stderr)
        return 2

    from pyflink.table import DataTypes
    from pyflink.table.expressions import col

    from flink_ml_predict import create_table_environment, predict, register_model

    t_env = create_table_environment(jobmanager=args.jobmanager)
    register_model(t_env, MODEL, {
        "provider": "openai",
        "endpoint": os.environ.get("OPENAI_ENDPOINT", "https://api.openai.com/v1/chat/completions"),
        "api-key": api_key,
        "model": os.environ.get("OPENAI_MODEL", "gpt-3.5-turbo"),
        "system-prompt": SYSTEM_PROMPT,
    }, outputs={"content": "STRING"})

    comments = t_env.from_elements(COMMENTS, DataTypes.ROW([
        DataTypes.FIELD("id", DataTypes.BIGINT()),
        DataTypes.FIELD("movie_name", DataTypes.STRING()),
        DataTypes.FIELD("user_comment", DataTypes.STRING()),
        DataTypes.FIELD("actual_label", DataTypes.STRING()),
    ]))
    # every column of `comments` followed by the model's OUTPUT column `content`
    labelled = predict(t_env, comments, MODEL, "user_comment").select(
        col("id"), col("movie_name"), col("content").alias("predict_label"), col("actual_label"))

    if args.output:
        sink = (f"'connector' = 'filesystem', 'path' = '{_uri(args.output)}', "
                "'format' = 'json'")
    else:
        sink = f"'connector' = 'print', 'print-identifier' = '{args.print_identifier}'"
    t_env.execute_sql("CREATE TEMPORARY TABLE sentiment_sink (id BIGINT, movie_name STRING, "
                      f"predict_label STRING, actual_label STRING) WITH ({sink})")
    result = labelled.execute_insert("sentiment_sink")
    client = result.get_job_client()
    if client is not None:
        print(f"job {client.get_job_id()} submitted", file=sys.stderr)
    result.wait()
    return 0


def _uri(path: str) -> str:
    return path if "://" in path else "file://" + os.path.abspath(path)


if __name__ == "__main__":
    sys.exit(main())
