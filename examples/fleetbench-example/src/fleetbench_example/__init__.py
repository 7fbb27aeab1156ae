"""fleetbench-example: how a third party extends fleetbench with its own package.

- `gateway`: a provider for a small HTTP JSON gateway (entry point `fleetbench.providers: gateway`);
- `gateway_server`: a tiny reference gateway, for the provider's tests and demos;
- `capitals`: a suite with its own options (entry point `fleetbench.suites: capitals`) and a simulated player
  (`fleetbench.simulators: capitals`);
- `conf/`: YAML presets (`suite=capitals_europe`, `models=with_gateway`, `experiment=capitals_gateway`), found by
  Hydra through the SearchPathPlugin in `hydra_plugins/fleetbench_example`.
"""

__version__ = "0.1.0"
