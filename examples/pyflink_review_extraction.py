"""Structured extraction from two input columns in a PyFlink program, with the Python API.

The job of sql/structured_review_extraction.sql written with ``register_model`` and ``predict``:
a movie name and a comment go in (through a prompt template), typed columns come out: a label, a
confidence, keywords, the prompt's token count, and the error of a row that failed (IGNORE keeps
the job running). The endpoint and the key come from the environment, never from the command line
(arguments are visible in ``ps``):

    OPENAI_ENDPOINT   e.g. https://api.openai.com/v1/chat/completions (the default)
    OPENAI_API_KEY    the key (required)
    OPENAI_MODEL      default gpt-4o-mini (a model that takes response_format json_schema)

Run it with plain Python on the embedded mini-cluster or a running cluster, or with
``flink run -py`` like examples/pyflink_sentiment_job.py::

    python examples/pyflink_review_extraction.py [--jobmanager HOST:REST_PORT] [--output DIR]

Without ``--output`` the rows go to Flink's print sink (this process's standard output on the
mini-cluster); with ``--output DIR`` they are written as JSON lines to a filesystem sink in DIR.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

MODEL = "review_extraction"
SYSTEM_PROMPT = ("Extract the sentiment of the movie comment, how confident you are (0 to 1) and "
                 "up to three keywords.")
COMMENTS = [
    (1, "好東西", "最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。"),
    (2, "水餃皇后", "乏善可陳"),
]
# OUTPUT columns: (name, type) or (name, type, comment); the comment describes the JSON field.
OUTPUTS: list[tuple[str, str, str | None]] = [
    ("label", "STRING", "positive, negative, neutral or mixed"),
    ("confidence", "DOUBLE", "0 to 1"),
    ("keywords", "ARRAY<STRING>", "up to three"),
    ("prompt-tokens", "INT", None),
    ("error-string", "STRING", None),
]
SINK_COLUMNS = ("id BIGINT, movie_name STRING, label STRING, confidence DOUBLE, "
                "keywords ARRAY<STRING>, prompt_tokens INT, error STRING")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobmanager", metavar="HOST:PORT", default=None,
                        help="submit to the cluster at this REST address")
    parser.add_argument("--output", default=None,
                        help="directory of a filesystem sink (JSON lines); default: print sink")
    parser.add_argument("--print-identifier", default="reviews",
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
        "model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        "system-prompt": SYSTEM_PROMPT,
        "prompt-template": "Movie: {movie_name}\nComment: {user_comment}",
        "error-handling-strategy": "IGNORE",
    }, inputs=[("movie_name", "STRING"), ("user_comment", "STRING")], outputs=OUTPUTS)

    comments = t_env.from_elements(COMMENTS, DataTypes.ROW([
        DataTypes.FIELD("id", DataTypes.BIGINT()),
        DataTypes.FIELD("movie_name", DataTypes.STRING()),
        DataTypes.FIELD("user_comment", DataTypes.STRING()),
    ]))
    # every column of `comments` followed by the OUTPUT columns; two columns -> two INPUT columns
    reviews = predict(t_env, comments, MODEL, ["movie_name", "user_comment"]).select(
        col("id"), col("movie_name"), col("label"), col("confidence"), col("keywords"),
        col("prompt-tokens"), col("error-string"))

    if args.output:
        path = args.output if "://" in args.output else "file://" + os.path.abspath(args.output)
        sink = f"'connector' = 'filesystem', 'path' = '{path}', 'format' = 'json'"
    else:
        sink = f"'connector' = 'print', 'print-identifier' = '{args.print_identifier}'"
    t_env.execute_sql(f"CREATE TEMPORARY TABLE review_sink ({SINK_COLUMNS}) WITH ({sink})")
    result = reviews.execute_insert("review_sink")
    client = result.get_job_client()
    if client is not None:
        print(f"job {client.get_job_id()} submitted", file=sys.stderr)
    result.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
