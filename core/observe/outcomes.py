"""How a task ended, and a container's status from its tasks when its own end is not heard.

A container (a DAG run, a flow run, a Dagster run) takes its status from its own hook when one
fires, else from its children: a failed child that was not retried fails it, and it succeeds
once every planned child ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from headwater.models import RunStatus


@dataclass
class Outcome:
    """One task attempt as the orchestrator's log tells it."""

    status: RunStatus = "running"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    final: bool = True  # False for an attempt that was retried


def status_from_children(
    attempts: Iterable[tuple[str, Outcome]], planned: Sequence[str] | None
) -> tuple[RunStatus | None, str | None]:
    """(the container's status, its error) from its children's attempts, as (task name, outcome);
    the status is None while undecided. `planned`: every task the container will run, if known."""
    ended = {task: o for task, o in attempts if o.final and o.status != "running"}
    failed = sorted(task for task, o in ended.items() if o.status == "failed")
    if failed:
        return "failed", f"steps failed: {', '.join(failed)}"
    if planned and all(task in ended for task in planned):
        return "succeeded", None
    return None, None
