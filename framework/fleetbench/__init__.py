"""fleetbench: benchmark LLMs across parallel deployments, counted under one canonical base-model name."""

__version__ = "0.1.0"
