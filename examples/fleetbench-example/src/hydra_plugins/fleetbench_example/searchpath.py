"""Adds fleetbench-example's YAML presets to Hydra's config search path.

Hydra scans the `hydra_plugins` namespace package of every installed distribution for plugins; this one appends
`pkg://fleetbench_example.conf`, so `suite=capitals_europe`, `models=with_gateway` and
`experiment=capitals_gateway` are found like fleetbench's own YAML. The suite's option schema does not come from
here: fleetbench registers every installed plugin's options dataclass in Hydra's ConfigStore from its entry point.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class FleetbenchExampleSearchPath(SearchPathPlugin):
    """Appends the package's presets after the application's own configs (which win on equal names)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="fleetbench-example", path="pkg://fleetbench_example.conf")
