"""Every `fastagi-router` command the README shows is run, in order, as an admin would.

The README's shell blocks (```` ```sh ````) are read top to bottom; each line that runs
`fastagi-router` is run with bash in one scratch directory, so that the store a command
writes is the store the next one reads. A line must exit 0 unless it ends with a comment
``# exit N``. ``serve`` is started in the background on free ports (the README's 4573 and
8080 are replaced by them) and stopped when the next ``serve`` starts, before a line whose
comment says it runs ``with the router stopped``, and at the end.

Console blocks (```` ```console ````) show a command after ``$ `` and what it prints: the
command is run the same way and its output must be what the README shows, durations
aside. A ```` ```csv customers.csv ```` block is written to the file it names before the
commands run, so that examples can import it. Commands that need root, systemd or the
compose containers are shown in text blocks: those are read by the command's parser.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
EXIT = re.compile(r"#.*\bexit (\d+)\b[^#]*$")
DURATION = re.compile(r"\d+(?:\.\d+)? ms\b")


@dataclass
class Command:
    line: int
    text: str
    expected_exit: int = 0
    expected_output: list[str] | None = None

    @property
    def serves(self) -> bool:
        return bool(re.search(r"fastagi-router serve\b", self.text))


def _blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced block."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("```") and lines[index] != "```":
            language = lines[index][3:].strip()
            start = index + 1
            end = start
            while lines[end] != "```":
                end += 1
            blocks.append((language, start + 1, lines[start:end]))
            index = end
        elif lines[index] == "```":
            end = index + 1
            while lines[end] != "```":
                end += 1
            index = end
        index += 1
    return blocks


def _joined(lines: list[str], first: int) -> list[tuple[int, str]]:
    """Join backslash continuations: (line number, command)."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(lines):
        if pending is not None:
            number, text = pending
            text = text + " " + raw.strip()
        else:
            number, text = first + offset, raw
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1])
            continue
        pending = None
        out.append((number, text))
    return out


def _is_command(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("#") and "fastagi-router" in stripped


def read_readme(text: str) -> tuple[list[Command], dict[str, str]]:
    """The commands to run, and the files to write first."""
    commands: list[Command] = []
    files: dict[str, str] = {}
    blocks = _blocks(text)
    # The first block is the two set-up commands: CI runs the second; serve is run below.
    for info, first, lines in blocks[1:]:
        language, _, name = info.partition(" ")
        if language == "sh":
            for number, command in _joined(lines, first):
                if _is_command(command):
                    found = EXIT.search(command)
                    commands.append(Command(number, command, int(found.group(1)) if found else 0))
        elif language == "console":
            current: Command | None = None
            for offset, raw in enumerate(lines):
                if raw.startswith("$ "):
                    found = EXIT.search(raw)
                    current = Command(
                        first + offset, raw[2:], int(found.group(1)) if found else 0, []
                    )
                    commands.append(current)
                elif current is not None and current.expected_output is not None:
                    current.expected_output.append(raw)
        elif language == "csv" and name:
            files[name.strip()] = "\n".join(lines) + "\n"
    return commands, files


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"serve did not listen:\n{log.read_text()}")


def _normalise(lines: list[str]) -> list[str]:
    return [DURATION.sub("N ms", line.rstrip()) for line in lines if line.strip()]


def test_the_readme_shows_commands_to_run() -> None:
    commands, files = read_readme(README.read_text())
    assert len(commands) >= 10
    assert any(command.serves for command in commands)
    assert any(command.expected_output for command in commands)
    assert "customers.csv" in files


def test_every_readme_command_runs(tmp_path: Path) -> None:
    commands, files = read_readme(README.read_text())
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    agi, http = _free_port(), _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTAGI_ROUTER_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        FASTAGI_ROUTER_AGI_LISTEN=f"127.0.0.1:{agi}",
        FASTAGI_ROUTER_HTTP_LISTEN=f"127.0.0.1:{http}",
        FASTAGI_ROUTER_API_TOKEN="readme-test-token-0123456789",
    )
    server: subprocess.Popen[bytes] | None = None
    log = tmp_path / "serve.log"

    def stop() -> None:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    try:
        for command in commands:
            text = command.text.replace(".venv/bin/", "")
            text = text.replace(":4573", f":{agi}").replace(":8080", f":{http}")
            text = text.split(" #")[0].strip()
            if "with the router stopped" in command.text:
                stop()
            if command.serves:
                stop()
                text = text.rstrip("&").strip()
                with log.open("ab") as sink:
                    server = subprocess.Popen(
                        ["bash", "-c", text],
                        cwd=tmp_path,
                        start_new_session=True,
                        env=env,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    )
                _wait_for(agi, server, log)
                continue
            done = subprocess.run(
                ["bash", "-c", text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            where = f"README.md:{command.line}: {shlex.quote(command.text)}"
            assert done.returncode == command.expected_exit, (
                f"{where} exited {done.returncode}\n{done.stdout}{done.stderr}"
            )
            if command.expected_output is not None:
                assert _normalise(done.stdout.splitlines()) == _normalise(
                    command.expected_output
                ), f"{where} printed:\n{done.stdout}"
    finally:
        stop()


#: Where a README command cannot run in a test: inside the compose containers, or as root
#: on a host with systemd (the paths of the systemd installation).
SYSTEM_ONLY = ("docker compose ", "/opt/fastagi-router/bin/fastagi-router")
INVOCATION = re.compile(r"(?:^|[\s/])fastagi-router ([a-z][a-z-]*(?: [^|#\\]*)?)")


def test_readme_commands_that_cannot_run_here_still_parse() -> None:
    """Commands shown outside shell blocks are system steps (compose, systemd); each is
    still read by the command's own parser, so a renamed command or option shows here."""
    from fastagi_router.cli import build_parser  # noqa: PLC0415

    parser = build_parser()
    checked = 0
    for info, first, lines in _blocks(README.read_text()):
        if info.split(" ")[0] in ("sh", "console"):
            continue
        for number, line in _joined(lines, first):
            found = INVOCATION.search(line)
            if found is None or line.lstrip().startswith(("#", ";", "-", "tls_")):
                continue
            assert any(marker in line for marker in SYSTEM_ONLY), (
                f"README.md:{number}: a fastagi-router command outside a sh block: {line}"
            )
            parser.parse_args(shlex.split(found.group(1)))
            checked += 1
    assert checked >= 4
