"""What the IO manager, the event-log reader and the sensor share: names, run ids, the observer.

Only translation lives here: every write goes through headwater.observe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headwater.api import run_id
from headwater.observe import Batch, Observer, Seen, location_name, now, observer_for
from headwater.refs import is_uri

ORCHESTRATOR = "dagster"
URI_KEY = "headwater/uri"  # asset definition metadata: the artifact's name (a location URI)
TYPE_KEY = "headwater/type"  # asset definition metadata: the artifact's type (model, dataset, ...)
VERSION_KEY = "headwater/version"  # output metadata added to the materialization
DIGEST_KEY = "headwater/digest"
PARTITION_TAG = "dagster/partition"

# (observer uri, headwater run id) already announced by this process: a run is upserted once per
# process; the event is durable in the outbox, so announcing it again would add nothing.
_announced: Seen[tuple[str | None, str]] = Seen()


def observer(uri: str | None = None) -> Observer:
    """The observer for a configured backend URI, or for HEADWATER_URI/HEADWATER_HOME when None."""
    return observer_for(ORCHESTRATOR, uri)


def container_id(dagster_run_id: str) -> str:
    """The headwater run of a Dagster run (kind "container")."""
    return run_id(ORCHESTRATOR, dagster_run_id)


def step_id(dagster_run_id: str, step_key: str, attempt: int) -> str:
    """The headwater run of one attempt of a Dagster step (kind "task")."""
    return run_id(ORCHESTRATOR, dagster_run_id, step_key, attempt)


def raw(value: Any) -> Any:
    """A metadata value as plain Python (MetadataValue objects carry it in `.value`)."""
    return getattr(value, "value", value)


def uri_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The `headwater/uri` definition metadata, normalised; None when unset or not a URI."""
    value = raw((metadata or {}).get(URI_KEY))
    if isinstance(value, str) and value.strip():
        value = value.strip()
        return location_name(value) if is_uri(value) else value
    return None


def type_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The `headwater/type` definition metadata (the artifact's type: model, dataset, ...)."""
    value = raw((metadata or {}).get(TYPE_KEY))
    return value.strip() if isinstance(value, str) and value.strip() else None


def asset_name(path: list[str] | tuple[str, ...], metadata: Mapping[str, Any] | None) -> str:
    """An asset's artifact name: its `headwater/uri` when set, else its key joined by `/`."""
    return uri_of(metadata) or "/".join(path)


def partition_name(name: str, partition: str | None) -> str:
    """Each partition is its own artifact, `<asset name>/<partition key>`, with its own versions."""
    return f"{name}/{partition}" if partition is not None else name


def location_of(metadata: Mapping[str, Any] | None) -> str | None:
    """Where bytes were stored, from output/materialization metadata: `path`, else `uri`."""
    for key in ("path", "uri"):
        value = raw((metadata or {}).get(key))
        if isinstance(value, str) and value:
            return value
    return None


@dataclass
class DagsterRun:
    """A Dagster run as headwater records it: a container run and a task run per step attempt."""

    dagster_run_id: str
    job: str
    job_namespace: str
    partition: str | None
    links: dict[str, str] | None

    def container(self, b: Batch, **fields: Any) -> str:
        rid = container_id(self.dagster_run_id)
        params = run_params(self.dagster_run_id, self.partition)
        b.run(
            rid,
            job=self.job,
            job_namespace=self.job_namespace,
            kind="container",
            params=params,
            links=self.links,
            **fields,
        )
        return rid

    def step(self, b: Batch, key: str, attempt: int, **fields: Any) -> str:
        rid = step_id(self.dagster_run_id, key, attempt)
        b.run(
            rid,
            job=f"{self.job}.{key}",
            job_namespace=self.job_namespace,
            kind="task",
            params=run_params(self.dagster_run_id, self.partition, key, attempt),
            parent_id=container_id(self.dagster_run_id),
            links=self.links,
            **fields,
        )
        return rid


def announce(b: Batch, uri: str | None, run: DagsterRun, key: str, attempt: int, code: dict[str, Any] | None) -> str:
    """Upsert the Dagster run (container) and this step attempt (task, running) once per
    process; the step's run id."""
    container, step = container_id(run.dagster_run_id), step_id(run.dagster_run_id, key, attempt)
    new = [rid for _, rid in _announced.missing([(uri, container), (uri, step)])]
    if container in new:
        run.container(b, status="running", started_at=now())
    if step in new:
        run.step(b, key, attempt, status="running", started_at=now(), code=code)
    return step


def run_params(
    dagster_run_id: str, partition: str | None, step_key: str | None = None, attempt: int | None = None
) -> dict[str, Any]:
    """The params of a Dagster run (container), or of one step attempt when `step_key` is given."""
    params: dict[str, Any] = {"dagster_run_id": dagster_run_id}
    if step_key is not None:
        params.update(step_key=step_key, attempt=attempt)
    if partition is not None:
        params["partition"] = partition
    return params


def mark_announced(uri: str | None, *run_ids: str) -> None:
    """Called once the batch that announced these runs is written (delivered or queued)."""
    _announced.add((uri, rid) for rid in run_ids)


def forget(uri: str | None, dagster_run_id: str, steps: Iterable[tuple[str, int]]) -> None:
    """Drop what this process remembers of a Dagster run and its steps (they ended here)."""
    gone = {(uri, container_id(dagster_run_id))}
    gone.update((uri, step_id(dagster_run_id, key, attempt)) for key, attempt in steps)
    _announced.discard(gone)


def run_link(dagster_url: str | None, dagster_run_id: str) -> dict[str, str] | None:
    if not dagster_url:
        return None
    return {"dagster": f"{dagster_url.rstrip('/')}/runs/{dagster_run_id}"}
