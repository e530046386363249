"""docker-compose.yml, the Dockerfile and the Asterisk files they mount.

No Docker engine runs here: the compose file is only read, with the small YAML reader
below (the test does not depend on PyYAML; when PyYAML is installed, one more test checks
that both readers agree). The router's environment is validated by the router's own
configuration loader.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.api.middleware import PUBLIC
from fastagi_router.cli import build_parser
from fastagi_router.config import env_name, load_settings, parse_hostport, setting_names

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
AGI_PORT = 4573


# -- a reader for the YAML that compose files use -----------------------------------------


class YAMLSubsetError(ValueError):
    """The text uses YAML this reader does not handle (or is not YAML)."""


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (i == 0 or line[i - 1] in " \t-:[{,"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text: str, lineno: int) -> str:
    text = text.strip()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise YAMLSubsetError(f"line {lineno}: unterminated double-quoted string")
        body = text[1:-1]
        escapes = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "/": "/"}
        out, i = [], 0
        while i < len(body):
            if body[i] == "\\":
                if i + 1 >= len(body) or body[i + 1] not in escapes:
                    raise YAMLSubsetError(f"line {lineno}: unsupported escape in {text}")
                out.append(escapes[body[i + 1]])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise YAMLSubsetError(f"line {lineno}: unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    if text[:1] in ("&", "*", "!", "|", ">", "{", "[", "%", "@", "`"):
        raise YAMLSubsetError(f"line {lineno}: unsupported YAML: {text!r}")
    return text


def _split_key(text: str) -> tuple[str, str] | None:
    """Split ``key: value`` (``key:`` at the end) outside quotes; None if not a mapping."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and i == 0:
            quote = ch
        elif ch == ":" and (i + 1 == len(text) or text[i + 1] == " "):
            return text[:i], text[i + 1 :].strip()
    return None


def parse_yaml_subset(text: str) -> Any:
    """Parse block mappings, block sequences (also of mappings) and plain, single- or
    double-quoted scalars, all returned as strings; ``key:`` with nothing under it is
    None. Anchors, tags, flow collections and block scalars raise `YAMLSubsetError`."""
    lines: list[tuple[int, str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        content = _strip_comment(raw).rstrip()
        if not content.strip() or content.strip() in ("---", "..."):
            continue
        indent = len(content) - len(content.lstrip(" "))
        if content[indent : indent + 1] == "\t":
            raise YAMLSubsetError(f"line {lineno}: tab in indentation")
        lines.append((indent, content.strip(), lineno))
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise YAMLSubsetError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _block(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[i][1]):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _sequence(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and _is_item(lines[i][1]):
        _, content, lineno = lines[i]
        rest = content[1:].lstrip()
        if not rest:
            if i + 1 < len(lines) and lines[i + 1][0] > indent:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            else:
                value, i = None, i + 1
        elif _split_key(rest) is not None or _is_item(rest):
            # "- key: value": a mapping whose keys line up after the dash.
            inner = indent + len(content) - len(rest)
            lines[i] = (inner, rest, lineno)
            value, i = _block(lines, i, inner)
        else:
            value, i = _scalar(rest, lineno), i + 1
        items.append(value)
    return items, i


def _mapping(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[dict[str, Any], int]:
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not _is_item(lines[i][1]):
        _, content, lineno = lines[i]
        split = _split_key(content)
        if split is None:
            raise YAMLSubsetError(f"line {lineno}: expected 'key: value', got {content!r}")
        key = _scalar(split[0], lineno)
        if key in mapping:
            raise YAMLSubsetError(f"line {lineno}: duplicate key {key!r}")
        i += 1
        if split[1]:
            mapping[key] = _scalar(split[1], lineno)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        elif i < len(lines) and lines[i][0] == indent and _is_item(lines[i][1]):
            mapping[key], i = _sequence(lines, i, indent)  # a list at the key's own indent
        else:
            mapping[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise YAMLSubsetError(f"line {lines[i][2]}: unexpected indentation")
    return mapping, i


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = parse_yaml_subset(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    value = compose["services"][name]
    assert isinstance(value, dict)
    return value


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # the "- NAME=value" form
        return dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else v for k, v in env.items()}


def bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of every short-syntax volume whose source is a path."""
    mounts = []
    for item in svc.get("volumes") or []:
        assert isinstance(item, str), f"long volume syntax not checked: {item!r}"
        source, target, mode = (*item.split(":"), "rw")[:3]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target, mode))
    return mounts


def published_ports(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(container port or range, protocol) of every published port."""
    out = []
    for item in svc.get("ports") or []:
        spec, _, proto = str(item).partition("/")
        out.append((spec.rsplit(":", 1)[-1], proto or "tcp"))
    return out


def covers(spec: str, port: int) -> bool:
    low, _, high = spec.partition("-")
    return int(low) <= port <= int(high or low)


# -- the reader itself --------------------------------------------------------------------


def test_yaml_reader_handles_what_compose_files_use() -> None:
    text = (
        "# comment\n"
        "a:\n"
        "  b: 'x: y'  # trailing comment\n"
        '  c: "quoted # not a comment"\n'
        "  list:\n"
        "  - one\n"
        "  - -c\n"
        "  maps:\n"
        "    - subnet: 10.0.0.0/8\n"
        "      gateway: 10.0.0.1\n"
        "  empty:\n"
        "  port: 5060:5060/udp\n"
    )
    assert parse_yaml_subset(text) == {
        "a": {
            "b": "x: y",
            "c": "quoted # not a comment",
            "list": ["one", "-c"],
            "maps": [{"subnet": "10.0.0.0/8", "gateway": "10.0.0.1"}],
            "empty": None,
            "port": "5060:5060/udp",
        }
    }


@pytest.mark.parametrize(
    "text",
    ["a: [1, 2]\n", "a: &x 1\n", "a: |\n  text\n", "a: 1\na: 2\n", "a:\n  b: 1\n   c: 2\n"],
)
def test_yaml_reader_refuses_what_it_does_not_handle(text: str) -> None:
    with pytest.raises(YAMLSubsetError):
        parse_yaml_subset(text)


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def test_yaml_reader_agrees_with_pyyaml(compose: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    assert _normalise(yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))) == compose


# -- docker-compose.yml -------------------------------------------------------------------


def test_both_services_exist(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"router", "asterisk"}
    # Those two start with a plain `docker compose up`.
    for name in ("router", "asterisk"):
        assert "profiles" not in service(compose, name)


def test_relative_volume_sources_exist(compose: dict[str, Any]) -> None:
    for name in compose["services"]:
        for source, _target, _mode in bind_mounts(service(compose, name)):
            if not source.startswith("/"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name in compose["services"]:
        for item in service(compose, name).get("volumes") or []:
            source = item.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_router_is_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    build = service(compose, "router")["build"]
    context = REPO / build.get("context", ".")
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file()
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(rf"^EXPOSE {AGI_PORT}\b", text, re.M)
    assert "pip install ." in text
    assert re.search(r'^ENTRYPOINT \["fastagi-router"\]', text, re.M)
    assert re.search(r'^CMD \["serve"\]', text, re.M)
    # Everything the Dockerfile copies must exist.
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (context / source).exists(), source


def test_router_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    known = {env_name(dotted) for dotted in setting_names()}
    env = environment(service(compose, "router"))
    router_vars = [name for name in env if name.startswith("FASTAGI_ROUTER_")]
    assert router_vars
    for name in router_vars:
        assert name in known, f"{name} is not a setting of fastagi-router"


def test_router_environment_is_a_valid_configuration(compose: dict[str, Any]) -> None:
    env = environment(service(compose, "router"))
    settings = load_settings(environ=env)  # raises ConfigError on any bad value
    host, port = parse_hostport(settings.agi.listen, "agi.listen")
    assert (host, port) == ("0.0.0.0", AGI_PORT)
    assert settings.db.startswith("/var/lib/fastagi-router/")


def test_router_database_is_on_a_volume(compose: dict[str, Any]) -> None:
    router = service(compose, "router")
    db_dir = str(Path(environment(router)["FASTAGI_ROUTER_DB"]).parent)
    targets = [item.split(":")[1] for item in router.get("volumes") or []]
    assert db_dir in targets


def test_router_allows_the_compose_network(compose: dict[str, Any]) -> None:
    env = environment(service(compose, "router"))
    allowed = load_settings(environ=env).agi.networks
    networks = compose["networks"]
    for name in service(compose, "asterisk")["networks"]:
        assert name in service(compose, "router")["networks"], f"router is not on {name}"
        for pool in networks[name]["ipam"]["config"]:
            subnet = ipaddress.ip_network(pool["subnet"])
            assert any(
                subnet.version == net.version and subnet.subnet_of(net)  # type: ignore[arg-type]
                for net in allowed
            ), f"agi.allow {allowed} does not cover {subnet}"


def _runs_healthcheck(argv: list[str]) -> None:
    """``argv`` is the image's command line for ``fastagi-router healthcheck``."""
    assert argv[:2] == ["fastagi-router", "healthcheck"], argv
    args = build_parser().parse_args(argv[1:])  # a real command with real options
    assert args.command == "healthcheck" and args.timeout <= 5


def test_router_health_check_runs_the_healthcheck_command(compose: dict[str, Any]) -> None:
    check = service(compose, "router")["healthcheck"]
    assert check["test"][0] == "CMD"
    _runs_healthcheck(check["test"][1:])
    # The command's own timeout is within the time Docker gives it.
    timeout = float(check["test"][check["test"].index("--timeout") + 1])
    assert 2 * timeout < float(check["timeout"].removesuffix("s"))
    # The check's own connection must not be refused (and logged) by agi.allow.
    allowed = load_settings(environ=environment(service(compose, "router"))).agi.networks
    assert any(ipaddress.ip_address("127.0.0.1") in net for net in allowed)


def test_dockerfile_health_check_and_user() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    joined = text.replace("\\\n", " ")
    (line,) = re.findall(r"^HEALTHCHECK (.+)$", joined, re.M)
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", line))
    assert set(options) <= {"interval", "timeout", "start-period", "retries"}
    argv = json.loads(line.split(" CMD ", 1)[1])  # exec form: no shell in between
    _runs_healthcheck(argv)
    assert 2 * float(argv[argv.index("--timeout") + 1]) < float(options["timeout"][:-1])
    # The server runs as an unprivileged user, set before the entry point.
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert text.index("USER ") < text.index("ENTRYPOINT")


def test_agi_port_is_not_published(compose: dict[str, Any]) -> None:
    # Intended: FastAGI has no authentication, and connections through a published port
    # may appear to come from the network gateway, inside agi.allow. Asterisk reaches
    # the router over the compose network; `expose` documents the port.
    for name in compose["services"]:
        for spec, _proto in published_ports(service(compose, name)):
            assert not covers(spec, AGI_PORT), f"{name} publishes {AGI_PORT}"
    assert str(AGI_PORT) in [str(p) for p in service(compose, "router").get("expose", [])]


def test_asterisk_publishes_sip_and_rtp(compose: dict[str, Any]) -> None:
    ports = published_ports(service(compose, "asterisk"))
    assert ("5060", "udp") in ports
    assert any(proto == "udp" and covers(spec, 10000) for spec, proto in ports)


def test_asterisk_depends_on_the_router_without_waiting_for_health(
    compose: dict[str, Any],
) -> None:
    depends = service(compose, "asterisk")["depends_on"]
    assert "router" in depends
    if isinstance(depends, dict):
        # Asterisk must take calls while the router is down (default queue).
        assert (depends["router"] or {}).get("condition", "service_started") != "service_healthy"


def test_asterisk_image_is_asterisk_20_or_later(compose: dict[str, Any]) -> None:
    image = service(compose, "asterisk")["image"]
    match = re.fullmatch(r"[\w./-]*asterisk:(\d+)[\w.-]*", image)
    assert match and int(match.group(1)) >= 20, image


def test_asterisk_mounts_the_dialplan_and_its_config(compose: dict[str, Any]) -> None:
    mounts = {
        target: (source, mode) for source, target, mode in bind_mounts(service(compose, "asterisk"))
    }
    assert mounts["/etc/asterisk/dialplan"] == ("./dialplan", "ro")
    assert mounts["/etc/asterisk/extensions.conf"][0] == "./deploy/asterisk/extensions.conf"
    assert mounts["/etc/asterisk/manager.conf"][0] == "./deploy/asterisk/manager.conf"
    for source, mode in mounts.values():
        assert mode == "ro", f"{source} must be read-only (the image chowns /etc/asterisk)"


def _container_path(mounts: dict[str, str], path: str) -> Path | None:
    """The repository file seen at ``path`` inside the asterisk container, if any."""
    for target, source in sorted(mounts.items(), key=lambda m: -len(m[0])):
        if path == target or path.startswith(target + "/"):
            return REPO / source / path[len(target) :].lstrip("/")
    return None


def test_asterisk_includes_resolve_through_the_mounts(compose: dict[str, Any]) -> None:
    mounts = {t: s for s, t, _m in bind_mounts(service(compose, "asterisk"))}
    extensions = _container_path(mounts, "/etc/asterisk/extensions.conf")
    assert extensions is not None
    includes = re.findall(r"^#include\s+\"?([^\"\s]+)", extensions.read_text(), re.M)
    assert includes
    for name in includes:
        path = name if name.startswith("/") else "/etc/asterisk/" + name
        found = _container_path(mounts, path)
        assert found is not None and found.is_file(), f"#include {name} is not mounted"


def test_asterisk_calls_the_router_service(compose: dict[str, Any]) -> None:
    text = (REPO / "deploy/asterisk/extensions.conf").read_text(encoding="utf-8")
    match = re.search(r"^SRCFG_URL=agi://([^:/]+):(\d+)/route$", text, re.M)
    assert match, "SRCFG_URL is not set in deploy/asterisk/extensions.conf [globals]"
    assert match.group(1) in compose["services"]
    assert int(match.group(2)) == AGI_PORT


def test_manager_conf_exports_the_account() -> None:
    text = (REPO / "deploy/asterisk/manager.conf").read_text(encoding="utf-8")
    general = text.split("[general]", 1)[1].split("\n[", 1)[0]
    match = re.search(r"^channelvars\s*=\s*(.+)$", general, re.M)
    assert match and "SR_ACCOUNT" in [v.strip() for v in match.group(1).split(",")]
    assert not re.search(r"^\s*secret\s*=", text, re.M), "no live secret in the repository"


# -- Prometheus (monitoring profile) ------------------------------------------------------

PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"


def test_prometheus_is_optional_and_pinned(compose: dict[str, Any]) -> None:
    prometheus = service(compose, "prometheus")
    assert prometheus["profiles"] == ["monitoring"]
    image = prometheus["image"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", image), f"{image}: pin a version"
    assert "smartrouting" in prometheus["networks"]


def test_prometheus_ui_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for item in service(compose, "prometheus").get("ports") or []:
        assert str(item).startswith("127.0.0.1:"), item


def _prometheus_config(compose: dict[str, Any]) -> dict[str, Any]:
    mounts = {t: s for s, t, _m in bind_mounts(service(compose, "prometheus"))}
    source = REPO / mounts[PROMETHEUS_CONFIG]
    assert source.is_file(), source
    config = parse_yaml_subset(source.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def test_prometheus_config_agrees_with_pyyaml(compose: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    text = (REPO / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8")
    assert _normalise(yaml.safe_load(text)) == _prometheus_config(compose)


def test_prometheus_scrapes_the_router_metrics(compose: dict[str, Any]) -> None:
    (job,) = _prometheus_config(compose)["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    router = service(compose, "router")
    settings = load_settings(environ=environment(router))
    assert settings.http.enabled
    host, port = parse_hostport(settings.http.listen, "http.listen")
    # The router listens beyond its loopback, on the port Prometheus asks.
    assert host in ("0.0.0.0", "::")
    assert targets == [f"router:{port}"]
    assert str(port) in [str(p) for p in router.get("expose", [])]
    # ... and only on the compose network: the REST API is not published on the host.
    for spec, _proto in published_ports(router):
        assert not covers(spec, port)
    for name in service(compose, "prometheus")["networks"]:
        assert name in router["networks"]


def test_metrics_path_is_served_without_a_token() -> None:
    assert "/metrics" in PUBLIC
