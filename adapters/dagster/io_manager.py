"""HeadwaterIOManager: records every output written and every input read, around any IO manager.

The wrapped IO manager does all storage; headwater only observes where it put the bytes.
No `from __future__ import annotations` here: Dagster's pydantic models must see the real
`ResourceDependency` annotation (verified with Dagster 1.13).
"""

import logging
from typing import Any

import dagster as dg
from dagster import (
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    IOManager,
    OutputContext,
    ResourceDependency,
    UPathIOManager,
)
from pydantic import Field

from headwater.adapters.dagster import _common as common
from headwater.adapters.dagster import deps
from headwater.adapters.dagster.eventlog import record_step_outcomes
from headwater.observe import Bounded, BoundedLists, function_code, one_line
from headwater.refs import is_uri

log = logging.getLogger("headwater")

# Step attempts whose IO this process recorded, per (uri, Dagster run): their statuses are read
# from the event log when the IO manager is torn down (end of the run in-process, end of the step
# in a multiprocess worker).
_steps: BoundedLists[tuple[str | None, str], tuple[str, int]] = BoundedLists(1024)
# What each step attempt read, (uri, run, step key, attempt) -> {input name: REFs recorded}: by
# load_input, else (deps no IO manager loads) at the step's first output, so each input is hashed
# once per attempt and each output names the inputs it was made from.
_read: Bounded[tuple[str | None, str, str, int], dict[str, list[str]]] = Bounded(4096)


class _Step:
    """The Dagster identity of the step an IO call runs in."""

    def __init__(self, context: Any) -> None:
        step_context = context.step_context
        run = step_context.dagster_run
        self.dagster_run_id: str = run.run_id
        self.job: str = run.job_name
        self.key: str = step_context.step.key
        self.attempt: int = int(step_context.previous_attempt_count or 0)
        self.partition: str | None = run.tags.get(common.PARTITION_TAG)
        self.instance = step_context.instance
        self.context = step_context
        # The op's own function (an asset's body), not Dagster's wrapper around it.
        fn = getattr(getattr(step_context.op_def, "compute_fn", None), "decorated_fn", None)
        self.code: dict[str, Any] | None = function_code(fn) if fn is not None else None

    def read(self, uri: str | None) -> dict[str, list[str]]:
        """What this step attempt read so far: input name -> REFs of the versions recorded."""
        key = (uri, self.dagster_run_id, self.key, self.attempt)
        found = _read.get(key)
        if found is None:
            found = {}
            _read.put(key, found)
        return found


class HeadwaterIOManager(ConfigurableIOManager):
    """Wraps `inner` (FilesystemIOManager when not given) and records lineage in headwater.

    - `handle_output`: a version of the asset's artifact (named by `headwater/uri` definition
      metadata, else the asset key joined by `/`; ops: `job/step/output`), hashed from where the
      wrapped manager stored it (the `path` or `uri` output metadata it adds, as every
      UPathIOManager does), each partition its own artifact `<name>/<partition key>`.
      `headwater/version` and `headwater/digest` are added to the output metadata.
    - `load_input`: an edge to the exact version read (re-hashed from the location the wrapped
      manager reads), one per partition when several are loaded.
    - teardown: the statuses of the steps it saw, from Dagster's event log.

    Recording never raises and never waits longer than HEADWATER_TIMEOUT_S; errors of the
    wrapped IO manager are the user's and propagate unchanged.
    """

    inner: ResourceDependency[IOManager] = Field(
        default_factory=lambda: dg.FilesystemIOManager(),
        description="The IO manager that stores the data (default: FilesystemIOManager()).",
    )
    uri: str | None = Field(
        default=None,
        description="headwater backend URI; default HEADWATER_URI, else sqlite under HEADWATER_HOME.",
    )
    job_namespace: str = Field(default="dagster", description="job_namespace of recorded runs.")
    dagster_url: str | None = Field(
        default=None, description="Dagster webserver URL, to link each recorded run to its Dagster run."
    )

    # -- outputs ---------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.inner.handle_output(context, obj)
        recorded: str | None = None
        announced: list[str] = []
        obs = common.observer(self.uri)
        with obs.batch(f"output {_describe(context)}") as b:
            step = _Step(context)
            announced = self._announce(b, step)
            run = announced[-1]
            name, partition = _output_name(context)
            location = _output_location(context, self.inner)
            if location is None:
                log.warning(
                    "headwater: dagster output %s not recorded: %s stores it at no path it reports "
                    "(add `path` or `uri` output metadata in its handle_output)",
                    name,
                    type(self.inner).__name__,
                )
            else:
                metadata: dict[str, Any] = {}
                if context.has_asset_key:
                    metadata["dagster/asset_key"] = context.asset_key.to_user_string()
                if partition is not None:
                    metadata["dagster/partition"] = partition
                # Deps only beside a recorded output: the event log then knows (headwater/digest)
                # not to record them a second time, hashed later. Before the output: its inputs
                # name the run's input edges.
                inputs = self._record_deps(b, context, step, run)
                recorded = b.produced(
                    run,
                    location,
                    name=name,
                    metadata=metadata,
                    type=common.type_of(context.definition_metadata),
                    inputs=inputs,
                )
        if b.delivered is not None:
            common.mark_announced(self.uri, *announced)
            if recorded is not None:
                self._add_version_metadata(context, obs, recorded, b.delivered)

    def _record_deps(self, b: Any, context: OutputContext, step: _Step, run: str) -> list[str]:
        """The step's asset deps that no load_input recorded (`deps=`, Nothing inputs, inputs
        another IO manager loads), each once per step attempt and hashed now: right after the
        computation read them, so a later change to a dep cannot slip into this run. Returns the
        REFs of the inputs this output was made from ([]: all of them).

        The deps are the step's own inputs: in a graph-backed asset, the inner op that takes a
        dep links it, not the op that writes the asset."""
        try:
            read = step.read(self.uri)
            layer = step.context.job_def.asset_layer
            inputs = deps.step_inputs(step.context)
            for name, key, partitions in inputs:
                if key is not None and name not in read:
                    metadata = layer.get(key).metadata if layer.has(key) else None
                    read[name] = deps.record(b, step.instance, run, key, metadata, partitions)
            if not context.has_asset_key:
                return []
            assets_def = layer.get_assets_def_for_node(step.context.node_handle)
            declared = assets_def.asset_deps.get(context.asset_key) if assets_def is not None else None
            return deps.made_from(((key, read.get(name, [])) for name, key, _ in inputs), declared)
        except Exception as err:  # noqa: BLE001 - the output's own version must survive this
            log.warning("headwater: dagster deps of %s not recorded: %s", _describe(context), one_line(err))
            return []

    def _add_version_metadata(self, context: OutputContext, obs: Any, recorded: str, delivered: Any) -> None:
        try:
            digest = recorded.rpartition("@")[2]
            version = recorded
            if delivered:
                version = obs.client().get(recorded).ref  # name:vN once the backend has it
            context.add_output_metadata({common.VERSION_KEY: version, common.DIGEST_KEY: digest})
        except Exception as err:  # noqa: BLE001 - never break the pipeline
            log.warning("headwater: dagster output metadata not added: %s", one_line(err))

    # -- inputs ----------------------------------------------------------------------------

    def load_input(self, context: InputContext) -> Any:
        value = self.inner.load_input(context)
        announced: list[str] = []
        with common.observer(self.uri).batch(f"input {_describe(context)}") as b:
            step = _Step(context)
            announced = self._announce(b, step)
            run = announced[-1]
            versions = _input_versions(context, self.inner, step)
            refs = [deps.use(b, run, name, location, digest) for name, location, digest in versions]
            step.read(self.uri)[context.name] = refs
        if b.delivered is not None:
            common.mark_announced(self.uri, *announced)
        return value

    # -- run and step ----------------------------------------------------------------------

    def _announce(self, b: Any, step: _Step) -> list[str]:
        """Upsert the Dagster run and this step attempt; [container id, step run id]."""
        _steps.append((self.uri, step.dagster_run_id), (step.key, step.attempt))
        run = common.DagsterRun(
            step.dagster_run_id,
            step.job,
            self.job_namespace,
            step.partition,
            common.run_link(self.dagster_url, step.dagster_run_id),
        )
        run_id = common.announce(b, self.uri, run, step.key, step.attempt, step.code)
        return [common.container_id(step.dagster_run_id), run_id]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        try:
            dagster_run = context.run
            if dagster_run is None:
                return
            seen = set(_steps.pop((self.uri, dagster_run.run_id)) or ())
            for key, attempt in seen:
                _read.pop((self.uri, dagster_run.run_id, key, attempt))
            common.forget(self.uri, dagster_run.run_id, seen)
            if seen:
                record_step_outcomes(
                    context.instance, dagster_run, seen, uri=self.uri, job_namespace=self.job_namespace
                )
        except Exception as err:  # noqa: BLE001 - never break the pipeline
            log.warning("headwater: dagster step statuses not recorded: %s", one_line(err))


# -- translation helpers ------------------------------------------------------------------------


def _describe(context: Any) -> str:
    try:
        if context.has_asset_key:
            return context.asset_key.to_user_string()
        return context.name
    except Exception:  # noqa: BLE001 - only a label for a log line
        return "?"


def _op_name(job: str, step_key: str, output: str, mapping_key: str | None) -> str:
    name = f"{job}/{step_key}/{output}"
    return f"{name}/{mapping_key}" if mapping_key else name


def _output_name(context: OutputContext) -> tuple[str, str | None]:
    """(artifact name, partition key or None) of an output."""
    if not context.has_asset_key:
        return _op_name(context.job_name, context.step_key, context.name, context.mapping_key), None
    name = common.asset_name(context.asset_key.path, context.definition_metadata)
    if context.has_asset_partitions:
        keys = list(context.asset_partition_keys)
        if len(keys) == 1:
            return common.partition_name(name, str(keys[0])), str(keys[0])
        # One object for a range of partitions (a single-run backfill): the asset's own name.
        return name, f"{keys[0]}...{keys[-1]}" if keys else None
    return name, None


def _output_location(context: OutputContext, inner: Any) -> str | None:
    """Where the wrapped manager stored this output: its `path`/`uri` metadata, else its path."""
    found = common.location_of(context.get_logged_metadata())
    if found is not None:
        return found
    if isinstance(inner, UPathIOManager):  # e.g. obj None: UPathIOManager omits `path` then
        if context.has_asset_partitions:
            paths = inner._get_paths_for_partitions(context)
            return str(next(iter(paths.values()))) if len(paths) == 1 else None
        return str(inner._get_path(context))
    return None


def _input_versions(context: InputContext, inner: Any, step: _Step) -> list[tuple[str, str | None, str | None]]:
    """(artifact name, location to hash or None, recorded digest or None) per version read."""
    upstream = context.upstream_output
    if not context.has_asset_key:  # an op output of this run
        if upstream is None:
            return []
        name = _op_name(upstream.job_name, upstream.step_key, upstream.name, upstream.mapping_key)
        path = str(inner._get_path(context)) if isinstance(inner, UPathIOManager) else None
        return [(name, path, None)]
    key = context.asset_key
    definition = upstream.definition_metadata if upstream is not None else {}
    base = common.asset_name(key.path, definition)
    uri = common.uri_of(definition)
    if context.has_asset_partitions:
        partitions: list[str | None] = [str(pk) for pk in context.asset_partition_keys]
        paths: dict[str, Any] = {}
        if isinstance(inner, UPathIOManager):
            paths = {str(pk): p for pk, p in inner._get_paths_for_partitions(context).items()}
    else:
        partitions = [None]
        paths = {}
        if isinstance(inner, UPathIOManager):
            paths = {None: inner._get_path(context)}  # type: ignore[dict-item]  # the one unpartitioned path
    found: list[tuple[str, str | None, str | None]] = []
    for partition in partitions:
        name = common.partition_name(base, partition)
        path = paths.get(partition)  # type: ignore[arg-type]  # None keys the unpartitioned path
        if path is not None:
            if partition is not None and not path.exists():
                continue  # a missing partition the manager skipped (allow_missing_partitions)
            found.append((name, str(path), None))
            continue
        location, digest = deps.stored(step.instance, key, partition)
        if location is None and uri is not None and is_uri(uri):
            location = common.partition_name(uri, partition)
        found.append((name, location, None if location else digest))  # hashed now, as read
    return found
