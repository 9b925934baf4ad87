"""The README's settings table is generated from the Settings class and must not drift."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_settings_table_matches_the_settings_class() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- settings:start[^>]*-->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert block, "README has no generated settings block"
    assert block.group(1) == settings_table(), "regenerate it with: python -m app.config"
