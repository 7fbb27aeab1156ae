"""Naming policy plugins."""
