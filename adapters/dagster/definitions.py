"""`with_headwater(defs)`: every IO manager of a Definitions wrapped, and the headwater sensor."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster import ConfigurableIOManagerFactory, IOManager, IOManagerDefinition

from headwater.adapters.dagster.eventlog import headwater_sensor
from headwater.adapters.dagster.io_manager import HeadwaterIOManager


def _is_io_manager(value: Any) -> bool:
    return isinstance(value, (IOManagerDefinition, ConfigurableIOManagerFactory, IOManager))


def with_headwater(
    defs: dg.Definitions,
    *,
    uri: str | None = None,
    job_namespace: str = "dagster",
    dagster_url: str | None = None,
    sensor: bool = True,
) -> dg.Definitions:
    """The same Definitions with lineage recorded for all assets at once.

    Each IO manager resource (any key) is wrapped in a HeadwaterIOManager, storage untouched;
    `io_manager` is added when missing (wrapping FilesystemIOManager, Dagster's default). With
    `sensor=True` the `headwater` sensor is added: it records final run and step statuses and
    materializations that bypass IO managers. Jobs that bind their own `resource_defs` keep them:
    wrap those IO managers with HeadwaterIOManager(inner=...) yourself.
    """
    options = {"uri": uri, "job_namespace": job_namespace, "dagster_url": dagster_url}
    resources = dict(defs.resources or {})
    for key, value in list(resources.items()):
        if _is_io_manager(value) and not isinstance(value, HeadwaterIOManager):
            resources[key] = HeadwaterIOManager(inner=value, **options)
    resources.setdefault("io_manager", HeadwaterIOManager(**options))
    sensors = list(defs.sensors or [])
    if sensor and not any(getattr(s, "name", None) == "headwater" for s in sensors):
        sensors.append(headwater_sensor(uri=uri, job_namespace=job_namespace, dagster_url=dagster_url))
    return dg.Definitions(
        assets=defs.assets,
        schedules=defs.schedules,
        sensors=sensors,
        jobs=defs.jobs,
        resources=resources,
        executor=defs.executor,
        loggers=defs.loggers,
        asset_checks=defs.asset_checks,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )
