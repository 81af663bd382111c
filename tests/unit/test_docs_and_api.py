"""The README's option reference is generated from the declarations, and the public API is what
__all__ says."""

from __future__ import annotations

import types

import flink_ml_predict
from tests.conftest import ROOT
from tools.update_readme import render


def test_readme_option_tables_match_the_declared_options() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert render(readme) == readme, "run: python tools/update_readme.py"
    for provider in ("openai", "qwen", "bailian"):
        assert f"<!-- options:{provider} -->\n| Key |" in readme


def test_public_api_is_exactly_all() -> None:
    public = {name for name in dir(flink_ml_predict) if not name.startswith("_")
              and not isinstance(getattr(flink_ml_predict, name), types.ModuleType)}
    assert set(flink_ml_predict.__all__) - {"__version__"} == public
    assert all(hasattr(flink_ml_predict, name) for name in flink_ml_predict.__all__)
