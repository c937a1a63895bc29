"""The translation rules on their own: what counts as a location, and the parameter summary."""

from __future__ import annotations

import math
from pathlib import Path

import fsspec
import pytest
from prefect.states import Cancelled, Completed, Crashed, Failed, Pending, Running

import headwater as hw
from headwater.adapters.prefect import translate
from headwater.observe import Location, find, summarize_params
from headwater.observe.install import Patches
from headwater.refs import parse_ref


def locations(value: object) -> list[tuple[str, str | None]]:
    return [(f.key, f.name) if isinstance(f, Location) else (f.ref, str(f.exact)) for f in find(value)]


def test_what_counts_as_a_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("x")
    (tmp_path / "notes").write_text("a file with no dot")
    mem = fsspec.open("memory://bucket/part-0.parquet")
    value = {
        "path": tmp_path / "data.csv",
        "relative": "data.csv",  # a string that names an existing path
        "bare": "notes",  # ... but not without a '/' or a '.': too likely to be a word
        "missing": "gone.csv",
        "uris": ["s3://lake/raw/", "gs://b/k", "file:///d/x.csv"],
        "not data": ["https://api.example.com/v1", "postgres://db:5432/shop.public.orders", "s3://"],
        "fsspec": mem,
        "output": hw.Output("model", tmp_path / "data.csv", type="model"),
        "numbers": [1, 2.5, None, True],
    }
    here = (tmp_path / "data.csv").as_uri()
    assert locations(value) == [
        (here, None),
        (here, None),
        ("s3://lake/raw", None),
        ("gs://b/k", None),
        ("file:///d/x.csv", None),
        ("memory:///bucket/part-0.parquet", None),  # fsspec's own spelling
        (here, "model"),
    ]


def test_headwater_versions_and_refs(store: hw.Client, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    version = store.log_artifact("ds", tmp_path / "a")
    assert locations([version, parse_ref("ds:v0"), parse_ref("ds:production")]) == [
        (f"ds@{version.digest}", "True"),
        ("ds:v0", "True"),
        ("ds:production", "False"),
    ]


def test_walks_stop_at_depth_and_count() -> None:
    deep = [[[["s3://b/deep"]]]]
    assert locations(deep) == []
    many = [f"s3://b/{i}" for i in range(5000)]
    assert len(locations(many)) < 1001


def test_the_parameter_summary_is_small_and_json_safe(tmp_path: Path) -> None:
    class Frame:
        def __repr__(self) -> str:  # pragma: no cover - must never be called
            raise AssertionError("repr of a parameter")

    summary = summarize_params(
        {
            "path": tmp_path,
            "nan": math.nan,
            "text": "x" * 600,
            "rows": list(range(25)),
            "frame": Frame(),
            "blob": b"abc",
            "nested": {"a": {"b": {"c": {"d": 1}}}},
            "output": hw.Output("m", "/m.pt"),
        }
    )
    assert summary == {
        "path": str(tmp_path),
        "nan": "nan",
        "text": "x" * 497 + "...",
        "rows": [*range(20), "... 5 more"],
        "frame": f"<{__name__}.test_the_parameter_summary_is_small_and_json_safe.<locals>.Frame>",
        "blob": "<bytes: 3 bytes>",
        "nested": {"a": {"b": {"c": "<dict>"}}},
        "output": {"name": "m", "path": "/m.pt"},
    }


def test_states() -> None:
    assert [translate.status_of(s) for s in (Completed(), Failed(), Crashed(), Cancelled(), Running())] == [
        "succeeded",
        "failed",
        "failed",
        "aborted",
        "running",
    ]
    assert translate.status_of(Pending(name="NotReady")) == "skipped"
    assert translate.status_of(Pending()) is None
    assert translate.error_of(Failed(message="Task run encountered an exception ValueError: x\nmore")) == (
        "Task run encountered an exception ValueError: x"
    )
    assert translate.error_of(Completed()) is None


def test_results_prefect_cannot_link() -> None:
    untracked = Completed()
    untracked.state_details.untrackable_result = True  # as Prefect's link_state_to_result sets it
    assert [translate.unlinkable(untracked, v) for v in (None, True, False, 3, -5, 256, Ellipsis)] == [True] * 7
    # a container holding a 3 sets the flag too, but the container itself is linked
    assert [translate.unlinkable(untracked, v) for v in (257, -6, 3.0, "3", (3,), [None])] == [False] * 6
    assert not translate.unlinkable(Completed(), 3)  # Prefect linked it: nothing to say


def test_whole_flow_tracking_wraps_five_methods_once(headwater_log: list) -> None:
    from prefect.context import AssetContext
    from prefect.flow_engine import AsyncFlowRunEngine, FlowRunEngine
    from prefect.task_engine import AsyncTaskRunEngine, SyncTaskRunEngine

    from headwater.adapters.prefect import whole_flow

    assert whole_flow.install() and whole_flow.install()  # idempotent
    wrapped = [(cls, name) for cls, name, *_ in whole_flow._targets()]
    assert wrapped == [
        (SyncTaskRunEngine, "call_hooks"),
        (AsyncTaskRunEngine, "call_hooks"),
        (FlowRunEngine, "call_hooks"),
        (AsyncFlowRunEngine, "call_hooks"),
        (AssetContext, "emit_events"),
    ]
    for cls, name in wrapped:
        original = getattr(cls, name).__headwater_original__
        assert not hasattr(original, "__headwater_original__")  # wrapped once

    patches = Patches(
        "Prefect",
        "whole-flow tracking",
        lambda: "3.10.0",
        whole_flow.patches.supported,
        whole_flow._targets,
        whole_flow.patches.params,
        whole_flow.patches.otherwise,
    )
    assert patches.install() is False and not patches.installed
    assert [r.getMessage() for r in headwater_log] == [
        "headwater: whole-flow tracking unavailable (RuntimeError: Prefect 3.10.0 is not in the verified range "
        "3.4-3.9); tracked flows record their own runs and tasks tracked with tracker.task"
    ]
