"""docker-compose.yml, the Tempo and Loki configs, and the demo Dockerfile.

No container runs here, because the build machines have no Docker engine.
The file is validated against the Compose specification's JSON schema and by
``docker-compose config`` (Debian's docker-compose 1.29), which needs no
engine. .ci/run installs both tools, and a test skips when its tool is missing.
The other tests check that the files agree with each other.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from collector_stack import BUILDER_MANIFEST, COLLECTOR_DIR, OTELCOL_CONFIG, REPO

COMPOSE_FILE = REPO / "docker-compose.yml"

# The npm package dclint ships the Compose specification's JSON schema
# (draft-07) as schemas/compose.schema.json. .ci/run installs this version
# with npm install --prefix into the same cache folder that collector/build.sh
# uses.
DCLINT_VERSION = "3.1.0"
CACHE_DIR = Path(
    os.environ.get("OTEL_MLMON_CACHE") or Path.home() / ".cache" / "otel_mlmon"
)
COMPOSE_SCHEMA = (
    CACHE_DIR / "npm" / "node_modules" / "dclint" / "schemas" / "compose.schema.json"
)


def load_compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


@pytest.fixture(name="compose_schema", scope="module")
def fixture_compose_schema() -> dict[str, Any]:
    """Load the compose-spec schema that the npm package dclint ships."""
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(
            f"compose-spec schema not found at {COMPOSE_SCHEMA}; .ci/run installs "
            f"it with the npm package dclint@{DCLINT_VERSION} when npm is on PATH"
        )
    return dict(json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8")))


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    import jsonschema

    # The schema names its draft as "https://json-schema.org/draft-07/schema".
    # jsonschema 4.26 matches draft-07 only by its http:// URL and would fall back
    # to the newest draft with a DeprecationWarning, so the class is named here.
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_matches_spec_schema(compose_schema: dict[str, Any]) -> None:
    """docker-compose.yml is valid against the compose-spec JSON schema."""
    assert schema_errors(compose_schema, COMPOSE) == []


def test_schema_rejects_misspelt_key(compose_schema: dict[str, Any]) -> None:
    """The schema check catches a misspelt service key."""
    broken = load_compose()
    broken["services"]["grafana"]["prots"] = broken["services"]["grafana"].pop("ports")
    errors = schema_errors(compose_schema, broken)
    assert any("prots" in error for error in errors), errors


def _docker_compose_or_skip() -> str:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.skip(
            "docker-compose not found on PATH; .ci/run installs it from "
            "Debian's docker-compose package"
        )
    return docker_compose


def _run_compose_config(
    docker_compose: str, compose_file: Path
) -> subprocess.CompletedProcess[str]:
    # DOCKER_HOST points at a socket that does not exist, so the check would
    # fail rather than reach a Docker engine if config ever needed one.
    return subprocess.run(
        [
            docker_compose,
            "--project-directory",
            str(REPO),
            "-f",
            str(compose_file),
            "config",
            "--quiet",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"},
    )


def test_docker_compose_config_accepts_file() -> None:
    """docker-compose config loads, interpolates and validates the file."""
    # docker-compose 1.29 rejects a top-level name: key, which Compose v2
    # accepts, so this test also keeps that key out of the file.
    docker_compose = _docker_compose_or_skip()
    result = _run_compose_config(docker_compose, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_rejects_misspelt_key(tmp_path: Path) -> None:
    """docker-compose config rejects a copy with a misspelt service key."""
    docker_compose = _docker_compose_or_skip()
    broken = load_compose()
    broken["services"]["grafana"]["prots"] = broken["services"]["grafana"].pop("ports")
    broken_file = tmp_path / "docker-compose.yml"
    broken_file.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
    result = _run_compose_config(docker_compose, broken_file)
    assert result.returncode != 0, result.stdout
    assert "prots" in result.stderr


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_published_ports_bind_loopback(service: str) -> None:
    """Every published port of the service binds 127.0.0.1."""
    for port in SERVICES[service].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{service} publishes {port}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_images_pinned(service: str) -> None:
    """Every image has an explicit version tag, never latest."""
    definition = SERVICES[service]
    if "build" in definition:
        return
    image = definition["image"]
    name, _, tag = image.rpartition(":")
    assert name and tag, f"{service} image {image} has no tag"
    assert tag != "latest"
    assert re.search(r"\d", tag), f"{service} image tag {tag} is not a version"


def test_collector_image_matches_manifest() -> None:
    """The Collector image is the release the builder manifest builds from."""
    manifest = yaml.safe_load(BUILDER_MANIFEST.read_text(encoding="utf-8"))
    image = SERVICES["otel-collector"]["image"]
    assert (
        image == f"otel/opentelemetry-collector-contrib:{manifest['dist']['version']}"
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_bind_mounts_exist(service: str) -> None:
    """Every file or folder the service mounts from the repository exists."""
    for volume in SERVICES[service].get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), f"{service} mounts missing {source}"


def test_demo_build_files_exist() -> None:
    """The demo's Dockerfile exists and copies what pip needs to install the package."""
    build = SERVICES["demo"]["build"]
    dockerfile = (REPO / build["context"] / build["dockerfile"]).read_text(
        encoding="utf-8"
    )
    assert 'pip install --no-cache-dir ".[sklearn]"' in dockerfile
    assert "otel-mlmon" in dockerfile
    for copied in ("pyproject.toml", "README.md", "otel_mlmon"):
        assert copied in dockerfile
        assert (REPO / copied).exists()


def test_demo_sends_to_collector_otlp_port() -> None:
    """The demo exports OTLP/HTTP to the Collector's HTTP receiver on the compose network."""
    environment = SERVICES["demo"]["environment"]
    assert environment["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert _config_default("OTELCOL_OTLP_HTTP_ENDPOINT") == "0.0.0.0:4318"


def _config_default(name: str) -> str:
    text = OTELCOL_CONFIG.read_text(encoding="utf-8")
    match = re.search(r"\$\{env:" + name + r":-([^}]*)\}", text)
    assert match, f"{name} not in the Collector config"
    return match.group(1)


def test_collector_defaults_reach_tempo_and_loki() -> None:
    """The Collector's default Tempo and Loki endpoints are the services' ports."""
    tempo = yaml.safe_load((COLLECTOR_DIR / "tempo.yaml").read_text(encoding="utf-8"))
    loki = yaml.safe_load((COLLECTOR_DIR / "loki.yaml").read_text(encoding="utf-8"))
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"][
        "endpoint"
    ]
    assert (
        _config_default("OTELCOL_TEMPO_ENDPOINT")
        == "tempo:" + tempo_grpc.rsplit(":", 1)[1]
    )
    assert _config_default("OTELCOL_LOKI_ENDPOINT") == (
        f"http://loki:{loki['server']['http_listen_port']}/otlp"
    )


def test_prometheus_scrapes_collector_exporter_port() -> None:
    """prometheus.yml scrapes the port the Collector's prometheus exporter listens on."""
    config = yaml.safe_load(
        (COLLECTOR_DIR / "prometheus" / "prometheus.yml").read_text()
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter_port = _config_default("OTELCOL_PROMETHEUS_ENDPOINT").rsplit(":", 1)[1]
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == [
        f"otel-collector:{exporter_port}"
    ]
    assert jobs["otel-collector"]["honor_labels"] is True
    assert "--enable-feature=exemplar-storage" in SERVICES["prometheus"]["command"]


def test_alertmanager_target_and_webhook_are_services() -> None:
    """Prometheus alerts go to the alertmanager service, and its webhook to alert-webhook."""
    prometheus = yaml.safe_load(
        (COLLECTOR_DIR / "prometheus" / "prometheus.yml").read_text()
    )
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    alertmanager = yaml.safe_load(
        (COLLECTOR_DIR / "alertmanager" / "alertmanager.yml").read_text()
    )
    urls = [
        webhook["url"]
        for receiver in alertmanager["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]
    assert urls == ["http://alert-webhook:8080/alerts"]
    assert "--port" in SERVICES["alert-webhook"]["command"]
    assert "8080" in SERVICES["alert-webhook"]["command"]


def test_loki_accepts_otlp_structured_metadata() -> None:
    """Loki's schema and limits allow the structured metadata that OTLP logs need."""
    loki = yaml.safe_load((COLLECTOR_DIR / "loki.yaml").read_text(encoding="utf-8"))
    schema = loki["schema_config"]["configs"][-1]
    assert schema["schema"] == "v13"
    assert schema["store"] == "tsdb"
    assert loki["limits_config"]["allow_structured_metadata"] is True


def test_tempo_and_loki_use_local_storage() -> None:
    """Tempo and Loki keep their data on the mounted volumes."""
    tempo = yaml.safe_load((COLLECTOR_DIR / "tempo.yaml").read_text(encoding="utf-8"))
    loki = yaml.safe_load((COLLECTOR_DIR / "loki.yaml").read_text(encoding="utf-8"))
    assert tempo["storage"]["trace"]["backend"] == "local"
    assert tempo["storage"]["trace"]["local"]["path"].startswith("/var/tempo/")
    assert "tempo-data:/var/tempo" in SERVICES["tempo"]["volumes"]
    assert loki["common"]["path_prefix"] == "/loki"
    assert "loki-data:/loki" in SERVICES["loki"]["volumes"]
