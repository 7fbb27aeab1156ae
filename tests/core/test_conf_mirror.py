"""Every plugin group's YAML lists exactly its plugin's options, so every option is overridable without `+`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from fleetbench import registry

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUP_KINDS = {"storage": "storage", "suite": "suites", "sharding": "sharding", "naming": "naming"}


def _group_files() -> list[tuple[str, Path]]:
    return [(kind, path) for group, kind in GROUP_KINDS.items() for path in sorted((CONF / group).glob("*.yaml"))]


@pytest.mark.parametrize(("kind", "path"), _group_files(), ids=lambda value: getattr(value, "name", value))
def test_group_yaml_mirrors_the_plugin_options(kind: str, path: Path) -> None:
    section = yaml.safe_load(path.read_text()) or {}
    cls = registry.plugin_class(kind, section["plugin"], f"{path.name}:plugin")
    options = {field.name for field in dataclasses.fields(cls.Options)}
    assert set(section) - {"plugin"} == options


def test_provider_sections_mirror_the_provider_options() -> None:
    sections = yaml.safe_load((CONF / "provider" / "default.yaml").read_text())
    for name, section in sections.items():
        cls = registry.plugin_class("providers", section["plugin"], f"providers.{name}.plugin")
        assert set(section) - {"plugin"} == {field.name for field in dataclasses.fields(cls.Options)}
