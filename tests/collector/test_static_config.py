"""Static checks of the Collector config and builder manifest; no Go needed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from collector_stack import BUILDER_MANIFEST, COLLECTOR_DIR, OTELCOL_CONFIG
from component_check import (
    check_config,
    env_references,
    read_component_list,
    read_manifest,
)

COMPONENT_LIST = COLLECTOR_DIR / "otelcol-contrib-0.159.0-components.tsv"


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "otelcol.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def load_config() -> dict[str, Any]:
    return dict(yaml.safe_load(OTELCOL_CONFIG.read_text(encoding="utf-8")))


def test_config_matches_manifest_and_release() -> None:
    """Every component the config uses is built by the manifest at the release's version."""
    assert check_config(OTELCOL_CONFIG, BUILDER_MANIFEST, COMPONENT_LIST) == []


def test_component_missing_from_manifest_named(tmp_path: Path) -> None:
    """A config that uses a component the manifest does not build fails with its name."""
    config = load_config()
    config["exporters"]["debug"] = {"verbosity": "basic"}
    config["service"]["pipelines"]["logs"]["exporters"].append("debug")

    problems = check_config(
        write_config(tmp_path, config), BUILDER_MANIFEST, COMPONENT_LIST
    )

    assert problems == [
        (
            "exporter debug: module go.opentelemetry.io/collector/exporter/debugexporter "
            "is missing from the builder manifest"
        )
    ]


def test_type_outside_release_named(tmp_path: Path) -> None:
    """A type the release does not ship, such as the removed loki exporter, is reported."""
    config = load_config()
    config["exporters"]["loki"] = {"endpoint": "http://loki:3100/loki/api/v1/push"}
    config["service"]["pipelines"]["logs"]["exporters"] = ["loki"]

    problems = check_config(
        write_config(tmp_path, config), BUILDER_MANIFEST, COMPONENT_LIST
    )

    assert "exporter loki: type loki is not in the release's component list" in problems


def test_deprecated_type_name_reported(tmp_path: Path) -> None:
    """The pre-2026 name otlp for the gRPC exporter is reported with its new name."""
    config = load_config()
    config["exporters"]["otlp/tempo"] = config["exporters"].pop("otlp_grpc/tempo")
    config["service"]["pipelines"]["traces"]["exporters"] = ["otlp/tempo"]

    problems = check_config(
        write_config(tmp_path, config), BUILDER_MANIFEST, COMPONENT_LIST
    )

    assert problems == [
        "exporter otlp/tempo uses the deprecated type name otlp; use otlp_grpc"
    ]


def test_undefined_pipeline_reference_reported(tmp_path: Path) -> None:
    """A pipeline that names a processor without a definition is reported."""
    config = load_config()
    config["service"]["pipelines"]["metrics"]["processors"].append("batch/metrics")

    problems = check_config(
        write_config(tmp_path, config), BUILDER_MANIFEST, COMPONENT_LIST
    )

    assert problems == ["processor batch/metrics is used in service but not defined"]


def test_unused_manifest_module_reported(tmp_path: Path) -> None:
    """A manifest module that the config never uses is reported."""
    manifest = yaml.safe_load(BUILDER_MANIFEST.read_text(encoding="utf-8"))
    manifest["exporters"].append(
        {"gomod": "go.opentelemetry.io/collector/exporter/debugexporter v0.159.0"}
    )
    manifest_path = tmp_path / "builder-config.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest), encoding="utf-8")

    problems = check_config(OTELCOL_CONFIG, manifest_path, COMPONENT_LIST)

    assert problems == [
        (
            "manifest exporters module go.opentelemetry.io/collector/exporter/debugexporter "
            "is not used by the config"
        )
    ]


def test_manifest_version_mismatch_reported(tmp_path: Path) -> None:
    """A manifest module at another version than the release's is reported."""
    text = BUILDER_MANIFEST.read_text(encoding="utf-8")
    manifest_path = tmp_path / "builder-config.yaml"
    manifest_path.write_text(
        text.replace(
            "tailsamplingprocessor v0.159.0", "tailsamplingprocessor v0.158.0"
        ),
        encoding="utf-8",
    )

    problems = check_config(OTELCOL_CONFIG, manifest_path, COMPONENT_LIST)

    assert problems == [
        (
            "processor tail_sampling: manifest builds github.com/open-telemetry/"
            "opentelemetry-collector-contrib/processor/tailsamplingprocessor v0.158.0, "
            "the release has v0.159.0"
        )
    ]


def test_every_env_reference_has_default() -> None:
    """Each ${env:VAR} in the config has a default, so the config runs unset."""
    references = env_references(OTELCOL_CONFIG.read_text(encoding="utf-8"))
    assert "OTELCOL_TEMPO_ENDPOINT" in references
    assert "OTELCOL_LOKI_ENDPOINT" in references
    missing = [name for name, default in references.items() if default is None]
    assert missing == []


def test_release_list_has_kinds() -> None:
    """The vendored component table parses into every kind with the pinned versions."""
    release = read_component_list(COMPONENT_LIST)
    assert set(release) == {
        "receivers", "processors", "exporters", "connectors", "extensions", "providers"
    }  # fmt: skip
    assert release["exporters"]["otlp_grpc"].alias == "otlp"
    assert release["processors"]["tail_sampling"].version == "v0.159.0"
    assert "loki" not in release["exporters"]


def test_builder_version_matches_release() -> None:
    """build.sh installs the builder of the manifest's release."""
    script = (COLLECTOR_DIR / "build.sh").read_text(encoding="utf-8")
    versions = {
        version
        for kind, modules in read_manifest(BUILDER_MANIFEST).items()
        if kind != "providers"
        for version in modules.values()
    }
    assert versions == {"v0.159.0"}
    assert "readonly BUILDER_VERSION=v0.159.0" in script


def test_built_binary_has_config_components(collector_binary: Path) -> None:
    """The built Collector lists exactly the types the static check expects."""
    listed = yaml.safe_load(
        subprocess.run(
            [str(collector_binary), "components"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    types = {
        kind: sorted(entry["name"] for entry in listed.get(kind) or [])
        for kind in ("receivers", "processors", "exporters", "extensions")
    }
    assert types == {
        "receivers": ["otlp"],
        "processors": ["batch", "memory_limiter", "tail_sampling"],
        "exporters": ["otlp_grpc", "otlp_http", "prometheus"],
        "extensions": ["health_check"],
    }


def test_built_binary_validates_config(collector_binary: Path) -> None:
    """The built Collector's validate command accepts collector/otelcol.yaml."""
    result = subprocess.run(
        [str(collector_binary), "validate", "--config", str(OTELCOL_CONFIG)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_built_binary_rejects_unbuilt_component(
    collector_binary: Path, tmp_path: Path
) -> None:
    """validate fails, naming the type, for a component this build leaves out."""
    config = load_config()
    config["exporters"]["debug"] = {}
    config["service"]["pipelines"]["logs"]["exporters"].append("debug")
    result = subprocess.run(
        [
            str(collector_binary),
            "validate",
            "--config",
            str(write_config(tmp_path, config)),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "debug" in result.stderr


@pytest.mark.parametrize(
    "path",
    sorted(COLLECTOR_DIR.rglob("*.y*ml")),
    ids=lambda p: str(p.relative_to(COLLECTOR_DIR)),
)
def test_yaml_files_parse(path: Path) -> None:
    """Every YAML file under collector/ parses."""
    assert yaml.safe_load(path.read_text(encoding="utf-8")) is not None
