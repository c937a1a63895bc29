"""What a Dagster step read, and which of its inputs made which output.

Dagster declares both: a step's inputs map to upstream asset keys (through the asset layer, down to
the inner op of a graph-backed asset that takes them), partition mappings say which upstream
partitions a step reads, and each asset's deps (`internal_asset_deps`, an `AssetSpec`'s `deps`)
say which inputs an output is made from. headwater records the same: an edge per partition read,
and per output the inputs that made it. Where nothing narrower is declared every input of the step
made every output (the store's fallback).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from headwater.adapters.dagster import _common as common
from headwater.refs import is_uri


def step_inputs(step_context: Any) -> list[tuple[str, Any, list[str] | None]]:
    """(input name, upstream asset key or None, the upstream partitions it reads or None) for
    each input of a step. The partitions follow the dep's partition mapping, as Dagster's own
    loading does (`asset_partitions_subset_for_input`)."""
    layer = step_context.job_def.asset_layer
    found = []
    for step_input in step_context.step.step_inputs:
        name = step_input.name
        key = layer.get_asset_key_for_node_input(step_context.node_handle, name)
        partitions = None
        if key is not None and step_context.has_asset_partitions_for_input(name):
            partitions = sorted(step_context.asset_partitions_subset_for_input(name).get_partition_keys())
        found.append((name, key, partitions))
    return found


def parent_partitions(
    instance: Any, asset_graph: Any, child: Any, partition: str | None, parent: Any
) -> list[str] | None:
    """The partitions of `parent` that `partition` of `child` reads (its partition mapping
    honoured; dynamic partitions from `instance`); None when `parent` is not partitioned."""
    if not asset_graph.get(parent).is_partitioned:
        return None
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        mapped = asset_graph.get_parent_partition_keys_for_child(partition, parent, child)
        return sorted(mapped.partitions_subset.get_partition_keys())


def stored(instance: Any, key: Any, partition: str | None, before: int | None = None) -> tuple[str | None, str | None]:
    """(stored location, headwater digest) from the asset's (partition's) latest materialization,
    before storage id `before` when given."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition] if partition is not None else None, before_storage_id=before
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return None, None
    metadata = records[0].asset_materialization.metadata
    digest = common.raw(metadata.get(common.DIGEST_KEY))
    return common.location_of(metadata), digest if isinstance(digest, str) else None


def record(
    b: Any,
    instance: Any,
    run: str,
    key: Any,
    metadata: Mapping[str, Any] | None,
    partitions: Sequence[str] | None,
    *,
    before: int | None = None,
) -> list[str]:
    """Edges from `run` to the versions of dep `key` (each partition in `partitions`) it read; the
    REFs of those edges. Each is the version HeadwaterIOManager recorded at the latest
    materialization (before storage id `before`), else the content now at its stored location or
    its `headwater/uri` (hashed: exact), else the asset's latest version (inexact). A partition
    never materialized and stored nowhere headwater knows links nothing: nothing was there to read."""
    name = common.asset_name(key.path, metadata)
    uri = common.uri_of(metadata)
    refs = []
    for partition in partitions if partitions is not None else [None]:
        location, digest = stored(instance, key, partition, before)
        if location is None and uri is not None and is_uri(uri):
            location = common.partition_name(uri, partition)
        if partition is None or location is not None or digest is not None:
            refs.append(use(b, run, common.partition_name(name, partition), location, digest))
    return refs


def use(b: Any, run: str, name: str, location: str | None, digest: str | None) -> str:
    """An edge from `run` to the version of `name` it read: the one recorded with `digest`, else
    the content at `location` hashed now, else `name`'s latest (inexact); the edge's REF."""
    if digest is not None:
        b.used_ref(run, f"{name}@{digest}")
        return f"{name}@{digest}"
    if location is not None:
        return b.used(run, location, name=name) or name
    b.used_ref(run, name, exact=False)
    return name


def made_from(read: Iterable[tuple[Any, Sequence[str]]], declared: Iterable[Any] | None) -> list[str]:
    """The REFs of the inputs an output was made from: those read under a declared dep key, and
    every input that is no asset (an op's output inside a graph). Empty, the store's "every input
    of the run", when nothing is declared or the declared deps cover every input.
    `read` lists (asset key or None, the REFs recorded for it) per input of the step."""
    if declared is None:
        return []
    keys, read = set(declared), list(read)
    made = [ref for key, refs in read if key is None or key in keys for ref in refs]
    return [] if len(made) == sum(len(refs) for _, refs in read) else made
