"""Check a Collector config against a builder manifest and a release's components.

It runs without Go and reads only the three files. It reports every
component the config uses that the manifest does not build or the release
does not ship, every deprecated type name, and every manifest module the
config does not use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")

_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


@dataclass(frozen=True)
class Component:
    """One component of a release: its type, old alias and Go module."""

    kind: str
    type: str
    alias: str
    module: str
    version: str


def read_component_list(path: Path) -> dict[str, dict[str, Component]]:
    """Parse a component table: ``[kind]`` sections of type, alias, gomod rows."""
    components: dict[str, dict[str, Component]] = {}
    kind = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            kind = line.strip("[]")
            components[kind] = {}
            continue
        columns = line.split("\t")
        module, version = columns[2].split(" ")
        components[kind][columns[0]] = Component(
            kind, columns[0], columns[1], module, version
        )
    return components


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Return the manifest's modules by kind, as {module: version}."""
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    modules: dict[str, dict[str, str]] = {}
    for kind in (*KINDS, "providers"):
        modules[kind] = {}
        for entry in manifest.get(kind) or []:
            module, version = entry["gomod"].split(" ")
            modules[kind][module] = version
    return modules


def used_components(config: dict[str, Any]) -> dict[str, set[str]]:
    """Return the component ids a config defines or references, by kind.

    An id is ``type`` or ``type/name``. Pipelines reference receivers,
    processors, exporters (and connectors as either end); service.extensions
    references extensions.
    """
    used: dict[str, set[str]] = {
        kind: set((config.get(kind) or {}).keys()) for kind in KINDS
    }
    service = config.get("service") or {}
    used["extensions"] |= set(service.get("extensions") or [])
    connectors = set((config.get("connectors") or {}).keys())
    for pipeline in (service.get("pipelines") or {}).values():
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind) or []:
                target = "connectors" if component_id in connectors else kind
                used[target].add(component_id)
    return used


def check_config(
    config_path: Path, manifest_path: Path, component_list_path: Path
) -> list[str]:
    """Return every problem found; an empty list means the three files agree."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    release = read_component_list(component_list_path)
    manifest = read_manifest(manifest_path)
    problems: list[str] = []
    needed_modules: dict[str, set[str]] = {kind: set() for kind in KINDS}

    for kind, component_ids in used_components(config).items():
        defined = set((config.get(kind) or {}).keys())
        by_alias = {
            c.alias: c
            for c in release.get(kind, {}).values()
            if c.alias not in ("-", "?")
        }
        for component_id in sorted(component_ids):
            if component_id not in defined:
                problems.append(
                    f"{kind[:-1]} {component_id} is used in service but not defined"
                )
            component_type = component_id.split("/", 1)[0]
            component = release.get(kind, {}).get(component_type)
            if component is None and component_type in by_alias:
                new_type = by_alias[component_type].type
                problems.append(
                    f"{kind[:-1]} {component_id} uses the deprecated type name "
                    f"{component_type}; use {new_type}"
                )
                component = by_alias[component_type]
            if component is None:
                problems.append(
                    f"{kind[:-1]} {component_id}: type {component_type} is not in the "
                    f"release's component list"
                )
                continue
            needed_modules[kind].add(component.module)
            built_version = manifest[kind].get(component.module)
            if built_version is None:
                problems.append(
                    f"{kind[:-1]} {component_id}: module {component.module} is missing "
                    f"from the builder manifest"
                )
            elif built_version != component.version:
                problems.append(
                    f"{kind[:-1]} {component_id}: manifest builds {component.module} "
                    f"{built_version}, the release has {component.version}"
                )

    for kind in KINDS:
        for module in sorted(set(manifest[kind]) - needed_modules[kind]):
            problems.append(
                f"manifest {kind} module {module} is not used by the config"
            )
    problems.extend(_check_providers(config_path, manifest, release))
    return problems


def _check_providers(
    config_path: Path,
    manifest: dict[str, dict[str, str]],
    release: dict[str, dict[str, Component]],
) -> list[str]:
    """The env provider is needed for ${env:...}; the file provider for --config."""
    problems = []
    needed = {"file"}
    if _ENV_REFERENCE.search(config_path.read_text(encoding="utf-8")):
        needed.add("env")
    for scheme in sorted(needed):
        provider = release["providers"][scheme]
        version = manifest["providers"].get(provider.module)
        if version != provider.version:
            problems.append(
                f"provider {scheme}: manifest must build {provider.module} {provider.version}"
            )
    return problems


def env_references(text: str) -> dict[str, str | None]:
    """Return each ${env:VAR:-default} in a config, with its default or None."""
    return {
        match.group(1): (match.group(2)[2:] if match.group(2) else None)
        for match in _ENV_REFERENCE.finditer(text)
    }
