"""Prefect 3 integration: the HeadwaterTracker block and its flow/task hooks.

    from prefect import flow, task
    from headwater.adapters.prefect import HeadwaterTracker

    tracker = HeadwaterTracker.lazy("lineage")   # the saved block, loaded in the first hook

    @tracker.flow        # this flow run, and every task and subflow run inside it
    @flow
    def pipeline(raw: Path) -> Path: ...

Register the block type with `prefect block register -m headwater.adapters.prefect`; the
`prefect.collections` entry point makes `Block.load("headwater-tracker/NAME")` work in any process.
See docs/prefect.md for what is recorded and what whole-flow tracking touches in Prefect.
"""

from headwater.adapters.prefect.block import HeadwaterTracker, LazyTracker, Tracking
from headwater.adapters.prefect.hooks import log_output

__all__ = ["HeadwaterTracker", "LazyTracker", "Tracking", "log_output"]
