"""The README keeps up with the code: commands, settings and reasons are all documented."""

from __future__ import annotations

import re
from pathlib import Path

from fastagi_router.config import env_name, setting_names
from fastagi_router.routing.decision import REASONS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_setup_commands() -> None:
    block = README.split("```")[1].strip().splitlines()
    assert block[0] == "sh"
    commands = block[1:]
    assert len(commands) == 2
    assert commands[0].endswith("fastagi-router serve")
    assert "pytest" in commands[1]


def test_every_setting_is_documented() -> None:
    for name in setting_names():
        assert f"| `{name}` | `{env_name(name)}` |" in README, name


def test_every_reason_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \| ", README, re.MULTILINE))
    assert set(REASONS) <= documented


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and "sed -n 2p" in ci


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_lead_somewhere() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.DOTALL)
    anchors = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", prose, re.MULTILINE)}
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert links
    for link in links:
        if link.startswith("http"):
            continue
        if link.startswith("#"):
            assert link[1:] in anchors, link
        else:
            assert (ROOT / link.split("#")[0]).exists(), link
