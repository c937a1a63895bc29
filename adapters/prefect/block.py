"""The HeadwaterTracker block and the one-line ways to track a flow or a task with it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from headwater import config
from headwater.adapters.prefect import hooks, whole_flow
from headwater.adapters.prefect.state import Scope
from headwater.adapters.prefect.translate import ORCHESTRATOR
from headwater.observe import Observer, PerProcess, in_event_loop, observer_for

FLOW_HOOKS = ("on_running", "on_completion", "on_failure", "on_crashed", "on_cancellation")
TASK_HOOKS = ("on_running", "on_completion", "on_failure")
_SCHEMES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://", "http://", "https://")


class _Hook:
    """headwater's Prefect state hook: one for flows, one for tasks (named 'headwater' in logs)."""

    def __init__(self, scope: Scope, kind: str) -> None:
        self.headwater_scope = scope  # how whole_flow recognises a flow or task tracked on its own
        self.kind = kind
        self.__name__ = "headwater"

    def __call__(self, obj: Any, run: Any, state: Any) -> Any:
        if config.disabled():
            return None
        if getattr(obj, "isasync", False) and in_event_loop():
            # The async engine awaits what a hook returns: do the work off its event loop.
            return asyncio.to_thread(self._record, obj, run, state)
        self._record(obj, run, state)
        return None

    def _record(self, obj: Any, run: Any, state: Any) -> None:
        running = state.is_running()
        if self.kind == "flow":
            fn = hooks.flow_running if running else hooks.flow_finished
            hooks.guarded("flow run", fn, self.headwater_scope, obj, run, state)
        elif running:
            hooks.guarded("task run", hooks.task_running, self.headwater_scope, obj, run, state, None)
        else:
            hooks.guarded("task run", hooks.task_finished, self.headwater_scope, obj, run, state, None)


class Tracking:
    """Turning tracking on, shared by the HeadwaterTracker block and its lazy handle."""

    def resolve(self) -> HeadwaterTracker:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def observer(self) -> Observer:
        tracker = self.resolve()
        return observer_for(
            ORCHESTRATOR, tracker.uri, token=tracker.token.get_secret_value() if tracker.token else None
        )

    def settings(self) -> HeadwaterTracker:
        return self.resolve()

    def flow(self, fn: Any = None, /, *, ignore_inputs: Iterable[str] = (), **options: Any) -> Any:
        """Track a flow run and every task and subflow run inside it.

        Use it above `@flow` (`@tracker.flow`), in its place (`@tracker.flow(name="etl")` takes
        `@flow`'s options), or on an existing flow: `tracked = tracker.flow(my_flow)` (a tracked
        copy; the original stays untracked). `ignore_inputs` names parameters that are never
        inputs, in the flow and in every task in it (an output folder such as `workdir`).
        """
        if fn is None:
            return lambda f: self.flow(f, ignore_inputs=ignore_inputs, **options)
        from prefect import Flow
        from prefect import flow as make_flow

        if not isinstance(fn, Flow):
            fn = make_flow(**options)(fn) if options else make_flow(fn)
            options = {}
        return _with_hooks(self, fn, FLOW_HOOKS, "flow", options, ignore_inputs)

    def task(self, fn: Any = None, /, *, ignore_inputs: Iterable[str] = (), **options: Any) -> Any:
        """Track one task wherever it is called (inside a tracked flow or not).

        `@tracker.task` above `@task` (or `@materialize`), in its place (`@tracker.task(retries=2)`),
        or `tracker.task(existing_task)` for a tracked copy. `ignore_inputs` as for `flow`.
        """
        if fn is None:
            return lambda f: self.task(f, ignore_inputs=ignore_inputs, **options)
        from prefect import Task
        from prefect import task as make_task

        if not isinstance(fn, Task):
            fn = make_task(**options)(fn) if options else make_task(fn)
            options = {}
        return _with_hooks(self, fn, TASK_HOOKS, "task", options, ignore_inputs)

    def track(self, obj: Any) -> Any:
        """`tracker.flow(obj)` for a Flow, `tracker.task(obj)` for a Task."""
        from prefect import Flow, Task

        if isinstance(obj, Flow):
            return self.flow(obj)
        if isinstance(obj, Task):
            return self.task(obj)
        raise TypeError(f"tracker.track() takes a Prefect Flow or Task, not {type(obj).__name__}")

    def log_output(
        self,
        target: Any,
        *,
        name: str | None = None,
        type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        """Record `target` as an output of the current task (or flow) run; returns `target`."""
        return hooks.log_output(target, name=name, type=type, metadata=metadata)


def _with_hooks(
    tracker: Tracking,
    obj: Any,
    names: tuple[str, ...],
    kind: str,
    options: dict[str, Any],
    ignore_inputs: Iterable[str],
) -> Any:
    if isinstance(ignore_inputs, str):
        ignore_inputs = (ignore_inputs,)
    whole_flow.install()
    scope = Scope(tracker, frozenset(ignore_inputs))
    hook = _Hook(scope, kind)
    for name in names:
        given = options.get(name)
        existing = list(given) if given is not None else list(getattr(obj, f"{name}_hooks", None) or [])
        options[name] = [hook] + [h for h in existing if not isinstance(h, _Hook)]
    return obj.with_options(**options)


class HeadwaterTracker(Block, Tracking):
    """Records the lineage of Prefect flows in headwater: every flow run and task run becomes a
    run, with the files, URIs and assets it read and wrote as artifact versions."""

    _block_type_name: ClassVar[str] = "Headwater Tracker"
    _block_type_slug: ClassVar[str] = "headwater-tracker"
    _description: ClassVar[str] = (
        "Records what each flow run and task run read and wrote (paths, URIs, assets) as versions "
        "in a headwater lineage backend."
    )
    _code_example: ClassVar[str] = """
```python
from prefect import flow
from headwater.adapters.prefect import HeadwaterTracker

tracker = HeadwaterTracker.lazy("BLOCK_NAME")  # loaded in the first hook, not at import

@tracker.flow          # the flow run and every task and subflow run inside it
@flow
def pipeline(raw: str) -> str:
    ...
```
"""

    uri: str | None = Field(
        default=None,
        title="Backend URI",
        description=(
            "Where lineage is recorded: sqlite:///path/headwater.db, postgresql://user@host/db or "
            "http(s)://server. Empty: HEADWATER_URI, else sqlite:///$HEADWATER_HOME/headwater.db. "
            "Shown in the UI: keep passwords in PGPASSWORD or ~/.pgpass."
        ),
    )
    token: SecretStr | None = Field(default=None, description="API token for an http(s):// headwater tracking server.")
    job_namespace: str = Field(
        default="prefect", description="The namespace of recorded jobs (like an OpenLineage job namespace)."
    )

    @field_validator("uri")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is not None and value.strip() == "":
            return None
        if value is not None and not value.startswith(_SCHEMES):
            raise ValueError("uri must start with sqlite:///, postgresql://, http:// or https://")
        return value

    @classmethod
    def lazy(cls, name: str) -> LazyTracker:
        """A handle on the saved block `name` that loads it in the first hook that needs it, once
        per process: importing a flow module then makes no API call."""
        return LazyTracker(name)

    def resolve(self) -> HeadwaterTracker:
        return self

    def describe(self) -> str:
        name = getattr(self, "_block_document_name", None)
        return f"block 'headwater-tracker/{name}'" if name else "HeadwaterTracker"


class LazyTracker(Tracking):
    """`HeadwaterTracker.lazy(name)`: the block named `name`, loaded on first use in each process."""

    RETRY_AFTER_S = 30.0  # a block that failed to load is tried again after this long

    def __init__(self, name: str) -> None:
        prefix = f"{HeadwaterTracker.get_block_type_slug()}/"
        self.name = name[len(prefix) :] if name.startswith(prefix) else name
        self._init_cache()

    def _init_cache(self) -> None:
        self._block = PerProcess(lambda: HeadwaterTracker.load(self.name, _sync=True), self.RETRY_AFTER_S)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self._init_cache()

    def __repr__(self) -> str:
        return f"HeadwaterTracker.lazy({self.name!r})"

    def describe(self) -> str:
        return f"block 'headwater-tracker/{self.name}'"

    def resolve(self) -> HeadwaterTracker:
        return self._block.get()
