"""Sharding strategies: how one base model's units are spread over its lanes."""
