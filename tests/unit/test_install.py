"""A broken install or checkout fails here, by name, rather than making some test skip: every
dependency the package declares (pyproject.toml) is installed, and every file the repository ships for scripts,
docs and tests is present."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

from tests.conftest import ROOT

# As installed (`pip install -e '.[test]'`): the package's own requirements and the test extra.
DEPENDENCIES = [r.split(";")[0].strip() for r in importlib.metadata.requires("flink-ml-predict") or []
                if ";" not in r or 'extra == "test"' in r]
SHIPPED = ["sql/seed_000_qwen_masking.sql", "sql/seed_002_bailian_sentiment.sql",
           "sql/seed_003_openai_sentiment.sql", "sql/models.sql", "docker-compose.yml",
           "docker/Dockerfile", "examples/pyflink_sentiment_job.py",
           "sql/structured_review_extraction.sql", "examples/pyflink_review_extraction.py"]


@pytest.mark.parametrize("requirement", DEPENDENCIES)
def test_declared_dependency_is_installed(requirement: str) -> None:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    try:
        importlib.metadata.distribution(name.group(0))
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{requirement!r} is declared in pyproject.toml but not installed: "
                    "run `make install` (pip install -e '.[test]')")


@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_file_is_present(path: str) -> None:
    assert (ROOT / path).is_file(), f"{path} is missing from the checkout"
    assert (ROOT / path).stat().st_size > 0, f"{path} is empty"
