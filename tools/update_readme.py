"""Regenerates the option tables of README.md from flink_ml_predict.options.OPTIONS.

    python tools/update_readme.py          # rewrite README.md in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flink_ml_predict.options import options_markdown  # noqa: E402
from flink_ml_predict.providers import PROVIDERS  # noqa: E402

_BLOCK = re.compile(r"(<!-- options:(\w+) -->\n).*?(<!-- /options:\2 -->)", re.S)


def render(readme: str) -> str:
    """The README text with every options block regenerated."""
    def table(match: re.Match[str]) -> str:
        provider = match.group(2)
        if provider not in PROVIDERS:
            raise ValueError(f"README names an unknown provider block: {provider}")
        return f"{match.group(1)}{options_markdown(provider)}\n{match.group(3)}"

    return _BLOCK.sub(table, readme)


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
