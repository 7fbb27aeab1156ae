"""Hydra discovers this package by scanning the `hydra_plugins` namespace (see `searchpath.py`)."""
