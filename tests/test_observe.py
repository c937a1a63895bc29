"""The adapter surface: exact events, never an exception, the time budget kept."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import headwater as hw
from headwater.digest import hash_bytes
from headwater.events import (
    EVENTS,
    AliasMoved,
    ContentPurged,
    EdgeRecorded,
    RetentionSet,
    RunRecorded,
    TagsChanged,
    VersionDeleted,
    VersionRecorded,
    dump_events,
    new_id,
)
from headwater.models import ManifestEntry
from headwater.observe import (
    Background,
    Bounded,
    BoundedLists,
    EnvKeyed,
    Location,
    Observer,
    PerProcess,
    Seen,
    VersionRef,
    client_for,
    code_identity,
    error_text,
    find,
    function_code,
    guard,
    guarding,
    in_event_loop,
    linkable,
    locate,
    location_name,
    now,
    observer_for,
    outputs_in,
    produced_locations,
    summarize,
    summarize_params,
    used_location,
    utc,
    version_tuple,
    wrap_methods,
)
from headwater.refs import Ref


@pytest.fixture
def observer(client: hw.Client) -> Observer:
    return Observer("testorch", client_factory=lambda: client)


def test_a_task_batch_records_run_inputs_and_outputs_as_references(
    observer: Observer, client: hw.Client, files
) -> None:
    root = files({"in.csv": "a\n", "out/part-0": "b", "out/part-1": "c"})
    container, task = hw.run_id("testorch", "dag", "r1"), hw.run_id("testorch", "dag", "t", "r1", 1)
    with observer.batch("task start") as b:
        b.run(container, job="dag", kind="container", status="running")
        b.run(task, job="dag.t", kind="task", status="running", parent_id=container, params={"n": 1})
        used = b.used(task, root / "in.csv")
    with observer.batch("task end") as b:
        produced = b.produced(task, root / "out", type="dataset", metadata={"rows": 2})
        b.run(task, status="succeeded")
    assert b.delivered is True
    run = client.get_run(task)
    assert (run.status, run.parent_id, run.orchestrator, run.kind, run.params) == (
        "succeeded",
        container,
        "testorch",
        "task",
        {"n": 1},
    )
    in_uri, out_uri = (root / "in.csv").as_uri(), (root / "out").as_uri()
    assert run.inputs == [f"{in_uri}:v0"] and run.outputs == [f"{out_uri}:v0"]
    assert used == f"{in_uri}@{client.get(in_uri).digest}" and produced == f"{out_uri}@{client.get(out_uri).digest}"
    output = client.get(out_uri)
    assert [(e.path, e.ref) for e in output.entries] == [
        ("part-0", f"{out_uri}/part-0"),
        ("part-1", f"{out_uri}/part-1"),
    ]
    assert (output.type, output.metadata) == ("dataset", {"rows": 2})
    assert list(client.blobs.iter_digests()) == []  # observed, never copied


def test_errors_inside_a_batch_are_one_warning_line(observer: Observer, client: hw.Client, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="headwater"), observer.batch("task end") as b:
        b.run(hw.run_id("x"), job="j")
        raise KeyError("task_instance")
    assert [r.getMessage() for r in caplog.records] == [
        "headwater: testorch task end not recorded: KeyError: 'task_instance'"
    ]
    assert client.runs() == [] and client.outbox.pending() == []


def test_unreadable_input_links_to_latest_inexactly_or_says_unverified(
    observer: Observer, client: hw.Client, files, tmp_path: Path
) -> None:
    root = files({"data.csv": "1"})
    client.log_reference(location_name(root / "data.csv"), (root / "data.csv").as_uri())
    (root / "data.csv").unlink()  # gone by the time the task runs
    task = hw.run_id("testorch", "reader")
    with observer.batch() as b:
        b.run(task, job="reader", status="succeeded")
        assert b.used(task, root / "data.csv") is None
        assert b.used(task, tmp_path / "never-existed.csv") is None
    edges = {(e.version, e.exact) for e in client.downstream(f"{(root / 'data.csv').as_uri()}:v0").edges}
    assert edges == {(f"{(root / 'data.csv').as_uri()}:v0", False)}
    ghost = client.get((tmp_path / "never-existed.csv").as_uri())
    assert (ghost.digest, ghost.entries) == (f"unverified:{task}", [])


def test_backend_down_leaves_the_batch_in_the_outbox(tmp_path: Path, headwater_home: Path, files) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    down = hw.Client(uri=f"sqlite:///{blocker}/x.db", home=headwater_home)
    observer = Observer("testorch", client_factory=lambda: down)
    root = files({"o": "1"})
    with observer.batch() as b:
        b.run(hw.run_id("d"), job="j", status="succeeded")
        b.produced(hw.run_id("d"), root / "o")
    assert b.delivered is False and len(down.outbox.pending()) == 1
    blocker.unlink()
    assert down.sync().delivered == 1
    assert down.get_run(hw.run_id("d")).outputs == [f"{(root / 'o').as_uri()}:v0"]


def test_disabled_records_nothing(observer: Observer, client: hw.Client, files, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_DISABLED", "1")
    with observer.batch() as b:
        b.run(hw.run_id("off"), job="j")
        assert b.produced(hw.run_id("off"), files({"o": "1"}) / "o") is None
    assert b.delivered is None and client.outbox.pending() == [] and client.runs() == []


def test_an_output_without_a_location_is_unverified(observer: Observer, client: hw.Client) -> None:
    task = hw.run_id("testorch", "nowhere")
    with observer.batch() as b:
        b.run(task, job="nowhere", status="succeeded")
        assert b.produced(task, None, name="in-memory-table") == f"in-memory-table@unverified:{task}"
    version = client.get("in-memory-table")
    assert (version.digest, version.entries, version.produced_by) == (f"unverified:{task}", [], task)


def test_a_queued_batch_goes_out_with_the_next_delivering_one(observer: Observer, client: hw.Client, files) -> None:
    task = hw.run_id("testorch", "queued")
    with observer.batch("task start", deliver=False) as start:
        start.run(task, job="t", status="running")
    assert start.delivered is False and len(client.outbox.pending()) == 1 and client.runs() == []
    with observer.batch("task end") as end:
        end.produced(task, files({"o": "1"}) / "o")
        end.run(task, status="succeeded")
    assert end.delivered is True and client.outbox.pending() == []
    assert (client.get_run(task).status, client.get_run(task).job) == ("succeeded", "t")


# -- a fresh task process ----------------------------------------------------------------------

# What a task process of a real executor does with headwater (the Airflow adapter's start batch,
# made durable in the outbox), then what it has loaded. Module lists, never timings.
_FRESH_TASK = """
import json, sys
import headwater.observe
loaded_by_import = sorted(m for m in sys.modules if m.startswith(("headwater.", "pydantic", "sqlalchemy")))
from headwater.observe import now, observer_for
with observer_for("fresh").batch("task start", deliver=False) as b:
    b.run("fresh-task", job="dag.t", kind="task", status="running", started_at=now())
print(json.dumps({"delivered": b.delivered, "by_import": loaded_by_import, "by_batch": sorted(sys.modules)}))
"""


def test_a_fresh_process_imports_only_what_recording_needs(headwater_home: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _FRESH_TASK], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    # `import headwater.observe` (an adapter's plugin module, in every process) loads nothing else.
    assert loaded["by_import"] == ["headwater.errors", "headwater.lazy", "headwater.observe"]
    # The durable batch needs the events (pydantic), not the store: no SQLAlchemy, no Alembic,
    # no HTTP client, no reference readers, no filelock (flock(2) on POSIX).
    assert loaded["delivered"] is False
    unwanted = (
        "sqlalchemy",
        "alembic",
        "httpx",
        "filelock",
        "uuid6",
        "headwater.store.sql",
        "headwater.digest.references",
    )
    assert [m for m in loaded["by_batch"] if m.startswith(unwanted)] == []
    assert "pydantic" in loaded["by_batch"] and "headwater.outbox" in loaded["by_batch"]
    (batch,) = (headwater_home / "outbox").glob("*/*.json")
    assert [(e["kind"], e["run_id"], e["status"]) for e in json.loads(batch.read_bytes())] == [
        ("run", "fresh-task", "running")
    ]


def test_events_are_written_as_the_union_of_every_event_writes_them() -> None:
    digest = "blake3:" + "0" * 64
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    events = [
        RunRecorded(run_id="r", job="j", status="running", started_at=at, params={"n": 1.5, "when": at}),
        VersionRecorded(
            name="a", digest=digest, entries=[ManifestEntry(path="p", digest=digest, size=3, ref="s3://b/p")]
        ),
        EdgeRecorded(run_id="r", ref="a:v1", exact=False, metadata={"é": [1, None]}),
        AliasMoved(name="a", alias="prod", digest=None),
        TagsChanged(name="a", digest=digest, add=["x"]),
        VersionDeleted(name="a", digest=digest, who="me"),
        ContentPurged(digests=[digest], reason="gdpr", who="me"),
        RetentionSet(selector="type", value="model", keep_last=3),
    ]
    assert dump_events(events) == EVENTS.dump_json(events) and dump_events([]) == EVENTS.dump_json([])
    assert EVENTS.validate_json(dump_events(events)) == events


def test_event_ids_are_uuid7_in_the_order_made() -> None:
    ids = [new_id() for _ in range(2000)]  # many within one millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    first_ms = parsed[0].int >> 80
    assert abs(first_ms - datetime.now(timezone.utc).timestamp() * 1000) < 60_000


# -- the toolkit the adapters share -----------------------------------------------------------


def test_one_client_per_backend_home_token_and_process(store_uri: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "a"))
    first = client_for(store_uri)
    assert client_for(store_uri) is first and client_for(store_uri, token="t") is not first
    assert first.home == tmp_path / "a"
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "b"))  # another home: another outbox
    second = client_for(store_uri)
    assert second is not first and second.home == tmp_path / "b"
    assert client_for(store_uri, home=tmp_path / "c").home == tmp_path / "c"
    assert client_for() is hw.api.default_client()
    assert observer_for("x", store_uri) is observer_for("x", store_uri)
    assert observer_for("x", store_uri).client() is client_for(store_uri, home=None)


def test_an_orchestrators_own_timeout_and_switch_win(monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "7")
    assert Observer("x").timeout == 7 and Observer("x", timeout=2).timeout == 2
    assert Observer("x").enabled and not Observer("x", disabled=True).enabled
    monkeypatch.setenv("HEADWATER_DISABLED", "1")
    assert not Observer("x").enabled


def test_guard_never_raises_and_warns_once_per_process(caplog) -> None:
    def explode(n: int) -> int:
        raise RuntimeError(f"broken\nsecond line {n}")

    with caplog.at_level(logging.WARNING, logger="headwater"):
        assert guard("testorch unique-guard event", explode, 1, default=0) == 0
        assert guard("testorch unique-guard event", explode, 1) is None
        assert guard("testorch unique-guard event", lambda: 5) == 5
        with guarding("testorch unique-guard block", "skipped"):
            raise KeyError("k")
    assert [r.getMessage() for r in caplog.records] == [
        "headwater: testorch unique-guard event not recorded: RuntimeError: broken",
        "headwater: testorch unique-guard block skipped: KeyError: 'k'",
    ]


def test_locate_names_paths_uris_and_path_objects(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("1")
    assert locate(data) == Location(str(data), data.as_uri())
    assert locate(str(data)).key == data.as_uri()  # an existing path-like string
    assert locate(str(tmp_path / "missing.csv")) is None  # a plain string that names nothing
    assert locate("s3://bucket/key.parquet").key == "s3://bucket/key.parquet"
    assert locate("https://example.com/api") is None and locate("s3://") is None and locate(3) is None
    fsspec = pytest.importorskip("fsspec")
    assert locate(fsspec.open("memory://x/y.bin")).key == "memory:///x/y.bin"  # as fsspec spells it
    upath = pytest.importorskip("upath")
    assert locate(upath.UPath("memory://x/z.bin")).key == "memory://x/z.bin"
    assert locate(upath.UPath(data)).key == data.as_uri()


def test_find_walks_values_for_locations_and_versions(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("1")
    found = list(find({"a": [data, "s3://b/k"], "b": Ref("model", alias="production"), "c": 1}))
    assert found == [
        Location(str(data), data.as_uri()),
        Location("s3://b/k", "s3://b/k"),
        VersionRef("model:production", exact=False),
    ]
    output = next(find(hw.Output(name="clean", path=data, type="dataset")))
    assert (output.name, output.key, output.type, output.explicit) == ("clean", data.as_uri(), "dataset", True)


def test_summarize_keeps_parameters_small_and_json_safe(tmp_path: Path) -> None:
    class Frame:
        pass

    summary = summarize_params(
        {
            "n": 1,
            "x": float("nan"),
            "path": tmp_path,
            "long": "a" * 600,
            "frame": Frame(),
            "many": list(range(25)),
            "deep": {"a": {"b": {"c": {"d": 1}}}},
            "blob": b"123",
        }
    )
    assert summary == {
        "n": 1,
        "x": "nan",
        "path": str(tmp_path),
        "long": "a" * 497 + "...",
        "frame": f"<{Frame.__module__}.{Frame.__qualname__}>",
        "many": [*range(20), "... 5 more"],
        "deep": {"a": {"b": {"c": "<dict>"}}},
        "blob": "<bytes: 3 bytes>",
    }
    assert summarize(datetime(2024, 1, 2, 3, 4, tzinfo=timezone.utc)) == "2024-01-02T03:04:00+00:00"


def test_code_identity_is_the_file_its_digest_and_the_git_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    source = repo / "flows" / "etl.py"
    source.parent.mkdir()
    source.write_text("def etl(): ...\n")
    identity = code_identity(source)
    assert identity == {"file": str(source), "file_digest": hash_bytes(source.read_bytes()), "git_sha": "a" * 40}
    assert code_identity(source) == identity  # cached: the same answer without reading again
    source.write_text("def etl(): return 1\n")  # changed: read again
    assert code_identity(source)["file_digest"] == hash_bytes(source.read_bytes())
    outside = tmp_path / "loose.py"
    outside.write_text("x = 1\n")
    assert set(code_identity(outside)) == {"file", "file_digest"}
    assert code_identity(tmp_path / "gone.py") == {"file": str(tmp_path / "gone.py")} and code_identity(None) == {}
    assert function_code(summarize)["function"] == "headwater.observe.params.summarize"


def test_utc_converts_every_form_an_orchestrator_reports() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert utc(datetime(2024, 1, 1, 12, tzinfo=plus_two)) == datetime(2024, 1, 1, 10, tzinfo=timezone.utc)
    assert utc(datetime(2024, 1, 1, 12)) == datetime(2024, 1, 1, 12, tzinfo=timezone.utc)
    assert utc(0) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert utc(None) is None and utc("2024-01-01") is None and utc(datetime(1, 1, 1)) is None


def test_now_is_aware_utc() -> None:
    assert now().tzinfo is not None and now().utcoffset() == timedelta(0)


def test_bounded_maps_forget_the_oldest_entry_past_their_size() -> None:
    runs: Bounded[str, int] = Bounded(2)
    runs.put("a", 1)
    runs.put("b", 2)
    runs.put("a", 3)  # touched: now the newest
    runs.put("c", 4)
    assert runs.items() == [("a", 3), ("c", 4)] and "b" not in runs
    assert runs.pop("a") == 3 and runs.pop("a") is None and runs.get("c") == 4
    logged: BoundedLists[str, str] = BoundedLists(1)
    logged.append("r1", "x")
    logged.append("r1", "y")
    logged.append("r2", "z")
    assert logged.items() == [("r2", ["z"])]


def test_seen_says_what_is_missing_until_added() -> None:
    seen: Seen[str] = Seen()
    assert seen.missing(["a", "b"]) == ["a", "b"]
    seen.add(["a"])
    assert seen.missing(["a", "b"]) == ["b"]
    seen.discard(["a"])
    assert seen.missing(["a"]) == ["a"]


def test_locations_in_values_are_recorded_as_inputs_and_outputs(
    observer: Observer, client: hw.Client, files, tmp_path: Path
) -> None:
    root = files({"in.csv": "a\n", "out.csv": "b\n"})
    rid = hw.run_id("testorch", "dag", "t", "r1", 1)
    assert outputs_in({"out": root / "out.csv", "gone": tmp_path / "missing.csv"}) == list(find(root / "out.csv"))
    with observer.batch("task end") as b:
        b.run(rid, job="dag.t", kind="task", status="succeeded")
        used_location(b, rid, locate(root / "in.csv"))  # type: ignore[arg-type]
        used_location(b, rid, locate(tmp_path / "missing.csv"))  # type: ignore[arg-type]
        refs = produced_locations(b, rid, outputs_in(root / "out.csv") * 2)
    assert len(refs) == 1 and linkable(refs[0][1]) and not linkable("x@unverified:r1")
    run = client.get_run(rid)
    in_uri, out_uri = (root / "in.csv").as_uri(), (root / "out.csv").as_uri()
    assert run.inputs == [f"{in_uri}:v0"] and run.outputs == [f"{out_uri}:v0"]
    out = locate(root / "out.csv")
    assert out is not None and refs == [(out.key, f"{out_uri}@{client.get(out_uri).digest}")]


def test_background_work_runs_off_the_callers_thread_and_flushes() -> None:
    import threading

    done: list[str] = []
    worker = Background()
    worker.submit(lambda: done.append(threading.current_thread().name))
    assert worker.flush(timeout=10) and done[0].startswith("headwater") and not in_event_loop()


def test_per_process_loads_once_and_waits_before_retrying_a_failure() -> None:
    calls: list[int] = []

    def load() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("block not saved yet")
        return len(calls)

    failing = PerProcess(load, retry_after=3600)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            failing.get()
    assert len(calls) == 1  # the failure is remembered, not retried at once
    loaded = PerProcess(load, retry_after=0)
    assert loaded.get() == 2 and loaded.get() == 2 and len(calls) == 2


def test_env_keyed_reads_again_only_when_its_variables_change(monkeypatch) -> None:
    reads: list[str | None] = []
    monkeypatch.setenv("HEADWATER_TEST_KEYED", "a")
    cached = EnvKeyed(["HEADWATER_TEST_KEYED"], lambda: reads.append("r") or len(reads))
    assert cached.get() == 1 and cached.get() == 1
    monkeypatch.setenv("HEADWATER_TEST_UNRELATED", "x")
    assert cached.get() == 1
    monkeypatch.setenv("HEADWATER_TEST_KEYED", "b")
    assert cached.get() == 2


def test_error_text_names_the_exception_and_stays_bounded() -> None:
    assert error_text(None) is None and error_text(ValueError()) == "ValueError"
    assert error_text(KeyError("x")) == "KeyError: 'x'" and error_text("x" * 5000) == "x" * 4000


def test_wrap_methods_checks_every_signature_before_wrapping_any() -> None:
    class Engine:
        def call_hooks(self, state: str) -> str:
            return state

        async def emit(self, state: str) -> None:
            return None

    def loud(original):  # type: ignore[no-untyped-def]
        return lambda self, state: original(self, state).upper()

    changed = [(Engine, "call_hooks", False, loud), (Engine, "emit", False, loud)]  # emit is async
    with pytest.raises(RuntimeError, match="Engine.emit has changed"):
        wrap_methods(changed, ["self", "state"])
    assert Engine().call_hooks("x") == "x"  # nothing wrapped
    wrap_methods([(Engine, "call_hooks", False, loud)], ["self", "state"])
    assert Engine().call_hooks("x") == "X" and Engine.call_hooks.__headwater_original__("", "y") == "y"
    assert [version_tuple(v) for v in ("3.9.1", "3.10.0rc1", "4.0a2")] == [(3, 9), (3, 10), (4, 0)]


def test_a_task_start_leaves_the_folder_fsync_to_the_batch_after_it(tmp_path: Path, monkeypatch) -> None:
    """A batch that is not delivered (a task's start) is fsynced and renamed, and the folder's own
    fsync is left to the next batch of the process: one folder fsync per task, not two."""
    from headwater import outbox

    synced: list[Path] = []
    fsync_dir = outbox._fsync_dir
    monkeypatch.setattr(outbox, "_fsync_dir", lambda folder: (synced.append(folder), fsync_dir(folder)))
    (tmp_path / "not-a-folder").write_text("")  # the backend cannot open its database: nothing delivered
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'not-a-folder' / 'hw.db'}", home=tmp_path / "home")
    observer = Observer("test", client_factory=lambda: client, timeout=1.0)
    rid = str(uuid.uuid4())
    with observer.batch("task start", deliver=False) as b:
        b.run(rid, job="j", kind="task", status="running")
    assert synced == [] and len(client.outbox.pending()) == 1
    with observer.batch("task succeeded") as b:
        b.run(rid, status="succeeded")
    assert b.delivered is False  # waiting: the folder holding both is synced once, by the end
    assert synced == [client.outbox.folder] and len(client.outbox.pending()) == 2
    queued = client.outbox.pending()[0].read_bytes()
    assert json.loads(queued)[0]["status"] == "running"  # the start, whole, under its name
