"""Dagster adapter: HeadwaterIOManager wraps any IO manager and records lineage in headwater.

    from headwater.adapters.dagster import with_headwater
    defs = with_headwater(dg.Definitions(assets=[...], resources={...}))

See docs/dagster.md for what is recorded and what is not.
"""

from headwater.adapters.dagster.definitions import with_headwater
from headwater.adapters.dagster.eventlog import headwater_sensor, record_run
from headwater.adapters.dagster.io_manager import HeadwaterIOManager

__all__ = ["HeadwaterIOManager", "headwater_sensor", "record_run", "with_headwater"]
