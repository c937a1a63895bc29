"""Edges as Dagster declares them: per output (`internal_asset_deps`, an `AssetSpec`'s deps, a
graph's wiring), per partition read (partition mappings honoured), from the step that read them."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
from pathlib import Path

import dagster as dg

import headwater as hw
from headwater.adapters.dagster import HeadwaterIOManager, record_run
from tests.graphs import by_id

from .conftest import container, step

JOB = "__ephemeral_asset_job__"


def io(storage: Path) -> HeadwaterIOManager:
    return HeadwaterIOManager(inner=dg.FilesystemIOManager(base_dir=str(storage)))


def upstream(store: hw.Client, ref: str) -> list[str]:
    """The versions `ref` was made from, all the way up."""
    return sorted(v.ref for v in store.upstream(ref).versions if v.ref != ref)


def made_from(store: hw.Client, ref: str) -> list[str]:
    """The inputs the edge that produced `ref` names ([]: every input of its run)."""
    return [e.inputs for e in store.upstream(ref, depth=1).edges if e.direction == "produced" and e.version == ref][0]


@dg.asset
def a() -> str:
    return "a"


@dg.asset
def b() -> str:
    return "b"


@dg.multi_asset(
    outs={"c": dg.AssetOut(), "d": dg.AssetOut()},
    internal_asset_deps={"c": {dg.AssetKey("a")}, "d": {dg.AssetKey("b")}},
)
def c_and_d(a: str, b: str):
    return a + "c", b + "d"


@dg.multi_asset(outs={"p": dg.AssetOut(), "q": dg.AssetOut()})
def p_and_q(a: str, b: str):  # declares nothing narrower: each output is made from both inputs
    return a + b + "p", a + b + "q"


def test_a_multi_asset_links_each_output_to_the_inputs_it_declares(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    r = dg.materialize([a, b, c_and_d, p_and_q], resources={"io_manager": io(storage)}, instance=instance).run_id
    assert by_id(store)["runs"] == {
        container(r): (JOB, "container", "succeeded", None, [], []),
        step(r, "a"): (f"{JOB}.a", "task", "succeeded", container(r), [], ["a:v0"]),
        step(r, "b"): (f"{JOB}.b", "task", "succeeded", container(r), [], ["b:v0"]),
        # the step read both and wrote both: one run, with each output's own inputs
        step(r, "c_and_d"): (f"{JOB}.c_and_d", "task", "succeeded", container(r), ["a:v0", "b:v0"], ["c:v0", "d:v0"]),
        step(r, "p_and_q"): (f"{JOB}.p_and_q", "task", "succeeded", container(r), ["a:v0", "b:v0"], ["p:v0", "q:v0"]),
    }
    assert (made_from(store, "c:v0"), made_from(store, "d:v0")) == (["a:v0"], ["b:v0"])
    assert (upstream(store, "c:v0"), upstream(store, "d:v0")) == (["a:v0"], ["b:v0"])
    assert sorted(v.ref for v in store.downstream("a:v0").versions) == ["a:v0", "c:v0", "p:v0", "q:v0"]
    # the documented fallback: nothing narrower declared, every input made every output
    assert (made_from(store, "p:v0"), upstream(store, "q:v0")) == ([], ["a:v0", "b:v0"])


def test_asset_spec_deps_of_a_multi_asset_that_bypasses_io_managers(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, tmp_path: Path
) -> None:
    """Specs with deps write their own files (`MaterializeResult`): recorded from the event log,
    each output made from its spec's deps."""
    e_file, f_file = tmp_path / "e.txt", tmp_path / "f.txt"

    @dg.multi_asset(specs=[dg.AssetSpec("e", deps=["a"]), dg.AssetSpec("f", deps=["b"])])
    def e_and_f():
        e_file.write_text("e\n")
        f_file.write_text("f\n")
        yield dg.MaterializeResult(asset_key="e", metadata={"path": str(e_file)})
        yield dg.MaterializeResult(asset_key="f", metadata={"path": str(f_file)})

    defs = dg.Definitions(assets=[a, b, e_and_f], resources={"io_manager": io(storage)})
    r = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).run_id
    record_run(instance, r, asset_graph=defs.resolve_asset_graph())
    job = "__ASSET_JOB"
    assert by_id(store)["runs"][step(r, "e_and_f")] == (
        f"{job}.e_and_f",
        "task",
        "succeeded",
        container(r),
        ["a:v0", "b:v0"],
        ["e:v0", "f:v0"],
    )
    assert (made_from(store, "e:v0"), made_from(store, "f:v0")) == (["a:v0"], ["b:v0"])
    assert (upstream(store, "e:v0"), upstream(store, "f:v0")) == (["a:v0"], ["b:v0"])


@dg.op
def shout(x: str) -> str:
    return x.upper()


@dg.op
def whisper(y: str) -> str:
    return y.lower()


@dg.op
def twice(z: str) -> str:
    return z * 2


@dg.graph_multi_asset(outs={"g": dg.AssetOut(), "h": dg.AssetOut()})
def g_and_h(a: str, b: str):
    return shout(a), twice(whisper(b))


def test_a_graph_multi_asset_links_each_input_from_the_op_the_graph_wires_it_to(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    """g <- shout(a), h <- twice(whisper(b)): each inner op is a step that read what the graph
    hands it, so g is made from a alone and h from b alone, through whisper's output."""
    first = dg.materialize([a, b], resources={"io_manager": io(storage)}, instance=instance).run_id
    r = dg.materialize(
        [a, b, g_and_h], selection=[g_and_h], resources={"io_manager": io(storage)}, instance=instance
    ).run_id
    whispered = f"{JOB}/g_and_h.whisper/result:v0"
    assert by_id(store)["runs"] == {
        container(first): (JOB, "container", "succeeded", None, [], []),
        step(first, "a"): (f"{JOB}.a", "task", "succeeded", container(first), [], ["a:v0"]),
        step(first, "b"): (f"{JOB}.b", "task", "succeeded", container(first), [], ["b:v0"]),
        container(r): (JOB, "container", "succeeded", None, [], []),
        step(r, "g_and_h.shout"): (f"{JOB}.g_and_h.shout", "task", "succeeded", container(r), ["a:v0"], ["g:v0"]),
        step(r, "g_and_h.whisper"): (
            f"{JOB}.g_and_h.whisper",
            "task",
            "succeeded",
            container(r),
            ["b:v0"],
            [whispered],
        ),
        step(r, "g_and_h.twice"): (f"{JOB}.g_and_h.twice", "task", "succeeded", container(r), [whispered], ["h:v0"]),
    }
    assert (upstream(store, "g:v0"), upstream(store, "h:v0")) == (["a:v0"], sorted(["b:v0", whispered]))


DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-05")
TWO_DAYS = dg.TimeWindowPartitionMapping(start_offset=-1)


@dg.asset(partitions_def=DAYS)
def daily(context: dg.AssetExecutionContext) -> str:
    return f"events of {context.partition_key}"


@dg.asset(partitions_def=DAYS, deps=[dg.AssetDep(daily, partition_mapping=TWO_DAYS)])
def rolling(context: dg.AssetExecutionContext) -> str:  # reads the day and the day before itself
    return f"two days to {context.partition_key}"


@dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(partition_mapping=TWO_DAYS)})
def loaded(daily: dict[str, str]) -> int:  # the same two days, loaded by the IO manager
    return len(daily)


def test_partitioned_deps_link_the_partitions_their_mapping_reads(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    days = DAYS.get_partition_keys()
    assert days == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    for day in days[:3]:
        dg.materialize([daily], partition_key=day, resources={"io_manager": io(storage)}, instance=instance)
    r = dg.materialize(
        [daily, rolling, loaded],
        selection=[rolling, loaded],
        partition_key=days[2],
        resources={"io_manager": io(storage)},
        instance=instance,
    ).run_id
    read = [f"daily/{days[1]}:v0", f"daily/{days[2]}:v0"]  # not days[0], not days[3]
    runs = by_id(store)["runs"]
    assert runs[step(r, "rolling")] == (
        f"{JOB}.rolling",
        "task",
        "succeeded",
        container(r),
        read,
        [f"rolling/{days[2]}:v0"],
    )
    assert runs[step(r, "loaded")] == (
        f"{JOB}.loaded",
        "task",
        "succeeded",
        container(r),
        read,
        [f"loaded/{days[2]}:v0"],
    )
    assert [v.ref for v in store.versions(f"daily/{days[0]}")] == [f"daily/{days[0]}:v0"]
    assert store.downstream(f"daily/{days[0]}:v0").runs == []


def test_partitioned_deps_of_an_asset_recorded_from_the_event_log(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, tmp_path: Path
) -> None:
    """An asset that writes its own file (`MaterializeResult`) with a partitioned dep: the
    event log says which partition it wrote, the mapping which partitions of the dep it read."""
    out = tmp_path / "summaries"

    @dg.asset(partitions_def=DAYS, deps=[dg.AssetDep(daily, partition_mapping=TWO_DAYS)])
    def summarized(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        out.mkdir(exist_ok=True)
        (out / context.partition_key).write_text("summary\n")
        return dg.MaterializeResult(metadata={"path": str(out / context.partition_key)})

    defs = dg.Definitions(assets=[daily, summarized], resources={"io_manager": io(storage)})
    days = DAYS.get_partition_keys()
    for day in days[:2]:
        defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, partition_key=day, asset_selection=[daily.key]
        )
    r = (
        defs.resolve_implicit_global_asset_job_def()
        .execute_in_process(instance=instance, partition_key=days[1], asset_selection=[summarized.key])
        .run_id
    )
    record_run(instance, r, asset_graph=defs.resolve_asset_graph())
    assert by_id(store)["runs"][step(r, "summarized")] == (
        "__ASSET_JOB.summarized",
        "task",
        "succeeded",
        container(r),
        [f"daily/{days[0]}:v0", f"daily/{days[1]}:v0"],
        [f"summarized/{days[1]}:v0"],
    )


FILES = dg.DynamicPartitionsDefinition(name="files")


@dg.asset(partitions_def=FILES)
def uploaded(context: dg.AssetExecutionContext) -> str:
    return f"contents of {context.partition_key}"


def test_an_unpartitioned_asset_links_every_dynamic_partition_of_its_dep(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, tmp_path: Path
) -> None:
    """Recorded from the event log: every partition the instance knows, those of a dynamic
    partitions definition included."""
    out = tmp_path / "inventory.txt"

    @dg.asset(deps=[uploaded])
    def inventory() -> dg.MaterializeResult:
        out.write_text("x y\n")
        return dg.MaterializeResult(metadata={"path": str(out)})

    instance.add_dynamic_partitions("files", ["x", "y"])
    defs = dg.Definitions(assets=[uploaded, inventory], resources={"io_manager": io(storage)})
    job = defs.resolve_implicit_global_asset_job_def()
    for key in ["x", "y"]:
        job.execute_in_process(instance=instance, partition_key=key, asset_selection=[uploaded.key])
    r = job.execute_in_process(instance=instance, asset_selection=[inventory.key]).run_id
    record_run(instance, r, asset_graph=defs.resolve_asset_graph())
    assert by_id(store)["runs"][step(r, "inventory")] == (
        "__ASSET_JOB.inventory",
        "task",
        "succeeded",
        container(r),
        ["uploaded/x:v0", "uploaded/y:v0"],
        ["inventory:v0"],
    )
