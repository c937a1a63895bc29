"""What this process knows between a Prefect run's hooks, kept in one object: `memory`.

Keyed by Prefect's run ids, in the toolkit's lock-guarded bounded maps: the thread-pool task
runner calls hooks from several threads, and a run that never reports its end is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from headwater.observe import Bounded, BoundedLists, Location, Observer

if TYPE_CHECKING:  # pragma: no cover
    from headwater.adapters.prefect.block import Tracking


@dataclass(frozen=True)
class Scope:
    """What a tracked flow (and everything in it) or a tracked task records with."""

    tracker: Tracking
    ignore_inputs: frozenset[str] = frozenset()  # parameter names never taken as inputs

    def observer(self) -> Observer:
        return self.tracker.observer()

    def settings(self) -> Any:
        return self.tracker.settings()

    def describe(self) -> str:
        return self.tracker.describe()


@dataclass
class RunInfo:
    """What a run's start and end events both carry (so either alone creates a complete run)."""

    rid: str
    job: str
    kind: str
    job_namespace: str
    parent_id: str | None
    flow_run_id: UUID | None  # the Prefect flow run a task run belongs to
    code: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    started_at: datetime | None = None
    inputs: list[Any] = field(default_factory=list)  # a task run's input events, hashed at its start

    def fields(self) -> dict[str, Any]:
        return dict(
            job=self.job,
            job_namespace=self.job_namespace,
            kind=self.kind,
            parent_id=self.parent_id,
            code=self.code or None,
            links=self.links or None,
        )


class State:
    """The process's bookkeeping between hooks, shared by `hooks` and `whole_flow`."""

    def __init__(self) -> None:
        # Flow run id -> the scope that tracks it and every task and subflow run inside it.
        self.tracked_flow_runs: Bounded[UUID, Scope] = Bounded(4096)
        # Run id (task or flow) -> its run between the Running hook and the end.
        self.open_runs: Bounded[UUID, RunInfo] = Bounded(20000)
        # Run id -> ((location, "name@digest"), ...) recorded as its outputs: what downstream tasks link to.
        self.recorded_outputs: Bounded[UUID, tuple[tuple[str, str], ...]] = Bounded(20000)
        # Run id -> outputs given to log_output(), recorded with the run's end.
        self.logged_outputs: BoundedLists[UUID, Location] = BoundedLists(20000)
        # Task run id -> {asset key: metadata} given to add_asset_metadata() (captured by whole_flow).
        self.asset_metadata: Bounded[UUID, dict[str, dict[str, Any]]] = Bounded(20000)
        # Flow run id -> its parameters as Python objects (captured by whole_flow at Running).
        self.flow_parameters: Bounded[UUID, dict[str, Any]] = Bounded(4096)
        # Untracked flow run id -> the scope of a tracker.task run inside it, which opened its
        # container: whole_flow closes that container with the flow run's final state.
        self.opened_flow_runs: Bounded[UUID, Scope] = Bounded(4096)


memory = State()
