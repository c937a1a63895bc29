"""Dagster integration: HeadwaterIOManager, wrapping any IO manager."""
