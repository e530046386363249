"""The README's REST API section keeps up with the application."""

from __future__ import annotations

import re
from pathlib import Path

from fastagi_router.api.errors import CODES
from fastagi_router.config import load_settings
from tests.api.conftest import DOC

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README.split("## REST API", 1)[1].split("\n## ", 1)[0]


def test_every_endpoint_is_in_the_readme() -> None:
    for path in DOC["paths"]:
        assert path.split("{", 1)[0] in SECTION, path


def test_every_error_code_is_in_the_readme() -> None:
    for code in CODES:
        assert f"`{code}`" in SECTION, code


def test_the_token_example_loads(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", SECTION, re.DOTALL)
    assert block is not None
    config = tmp_path / "router.toml"
    config.write_text(block.group(1))
    assert len(load_settings(str(config), environ={}).api.tokens) == 2
