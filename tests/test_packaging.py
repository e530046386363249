"""The wheel carries the package and its dialplan, and nothing else of the repository;
``fastagi-router dialplan`` prints the very files of dialplan/."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastagi_router.admin import dialplan_files
from tests.test_cli import run

REPO = Path(__file__).resolve().parents[1]
DIALPLAN = REPO / "dialplan"
SNIPPETS = sorted(p.name for p in DIALPLAN.glob("*.conf"))


def test_dialplan_dir_is_the_package_data() -> None:
    # dialplan/ (used by docker-compose.yml and the README) is the packaged directory.
    assert DIALPLAN.resolve() == (REPO / "fastagi_router" / "dialplan").resolve()
    assert SNIPPETS


def test_dialplan_prints_every_snippet() -> None:
    code, out = run("dialplan")
    assert code == 0
    assert out == "".join((DIALPLAN / name).read_text(encoding="utf-8") for name in SNIPPETS)


def test_dialplan_prints_one_file_by_name() -> None:
    for name in SNIPPETS:
        text = (DIALPLAN / name).read_text(encoding="utf-8")
        assert run("dialplan", name) == (0, text)
        assert run("dialplan", name.removesuffix(".conf")) == (0, text)


def test_dialplan_list() -> None:
    code, out = run("dialplan", "--list")
    assert code == 0
    assert out.splitlines() == sorted(p.name for p in DIALPLAN.iterdir())
    assert list(dialplan_files()) == out.splitlines()


def test_dialplan_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("dialplan", "extensions.conf")[0] == 2
    err = capsys.readouterr().err
    assert "no dialplan file 'extensions.conf'" in err and SNIPPETS[0] in err


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel, built from a copy of the working tree without build isolation."""
    if importlib.util.find_spec("wheel") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools and wheel are needed to build the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--quiet", "--wheel-dir", str(tmp / "dist"), str(source)),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (built,) = (tmp / "dist").glob("fastagi_router-*.whl")
    yield built


def test_wheel_carries_the_dialplan_and_no_repository_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for name in [*SNIPPETS, "README.md"]:
            data = archive.read(f"fastagi_router/dialplan/{name}")
            assert data == (DIALPLAN / name).read_bytes(), name
    tops = {name.split("/")[0] for name in names}
    assert tops == {"fastagi_router", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "fastagi_router/cli.py" in names
    for name in names:
        assert not name.startswith(("tests/", "bench/", "fuzz/", "deploy/", ".git")), name
        assert "__pycache__" not in name and not name.endswith((".db", ".pyc")), name


def test_installed_wheel_prints_the_repository_dialplan(wheel: Path, tmp_path: Path) -> None:
    """Unpacked on its own (not this checkout), the package prints the same files."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    # -S: no site processing, so the editable install of this checkout is not on the path;
    # the dependencies come from the site-packages directories, named explicitly.
    paths = [str(tmp_path / "site"), *(p for p in sys.path if p.endswith("-packages"))]
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys, fastagi_router.cli as c; print(c.__file__, file=sys.stderr); "
            "sys.exit(c.main(['dialplan']))",
        ],
        env={"PYTHONPATH": os.pathsep.join(paths), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # not this checkout: "-c" puts the working directory first
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().startswith(str(tmp_path / "site")), proc.stderr
    expected = "".join((DIALPLAN / name).read_text(encoding="utf-8") for name in SNIPPETS)
    assert proc.stdout == expected
